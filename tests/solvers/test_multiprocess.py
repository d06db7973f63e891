"""Two processes on this machine, 4 simulated CPU devices each, give the one-process values.

Each process runs ``tests/solvers/multiprocess_worker.py``: ``jax.distributed.initialize``
with a coordinator on a free localhost port and CPU collectives over gloo, then the
stochastic DSE of n = 20,000 points (blockwise operator, rows sharded over the
global 8-device mesh) and a DSMI whose subsets are split over the same mesh.
Every wait is bounded (initialization, heartbeats and shutdown inside the workers,
a timeout on the processes here) and a failed start is retried once, on a new port.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxdse
from tests.solvers.multiprocess_data import DSMI_SETTINGS, SIGMA, SLQ_SETTINGS, data

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "solvers" / "multiprocess_worker.py"
NUM_PROCESSES = 2
TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes():
    """Start the workers, wait for all (bounded); return their JSON results or raise with their output."""
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        NPROC=str(max(16, os.cpu_count() or 1)),  # more XLA pool threads than local devices: see test_sharding
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-u", str(WORKER), str(i), str(NUM_PROCESSES), str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(NUM_PROCESSES)
    ]
    deadline = time.monotonic() + TIMEOUT_S
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    failed = [o for o in outputs if o[0] != 0]
    if failed:
        raise RuntimeError("\n".join(f"exit {rc}\n{out}\n{err[-3000:]}" for rc, out, err in failed))
    return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outputs]


@pytest.mark.slow
def test_two_processes_equal_one_process():
    start = time.perf_counter()
    errors = []
    for _ in range(2):  # one retry at most (e.g. a port taken between choosing and binding it)
        try:
            results = run_processes()
            break
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            errors.append(repr(err)[-4000:])
    else:
        pytest.fail("\n\n".join(errors))
    multi_s = time.perf_counter() - start

    x, z, y = data()
    one = jaxdse.dse_estimate(
        x, sigma=SIGMA, solver=jaxdse.SLQ(operator="blockwise", **SLQ_SETTINGS), key=jax.random.key(0)
    )
    mi = jaxdse.dsmi(z, y, key=jax.random.key(1), **DSMI_SETTINGS)
    print(f"two processes: {multi_s:.1f} s; one process: {float(one.value)} {float(mi)}; {results}")

    assert sorted(r["process"] for r in results) == [0, 1]
    for r in results:
        assert (r["processes"], r["devices"], r["local_devices"]) == (2, 8, 4)
        np.testing.assert_allclose(r["dse"], float(one.value), rtol=2e-5)
        np.testing.assert_allclose(r["dsmi"], float(mi), rtol=1e-5, atol=1e-5)

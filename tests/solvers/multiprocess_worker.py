"""One process of the two-process check in ``tests/solvers/test_multiprocess.py``.

Usage: ``python tests/solvers/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT``, with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in the environment. Joins
the other processes through a coordinator on ``localhost:PORT`` (CPU collectives
over gloo), builds one mesh over every process's devices, computes the stochastic
DSE and a DSMI with it, prints one JSON line and shuts the distributed system down.
"""

import json
import sys
import time


def main(process_id: int, num_processes: int, port: int) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
        heartbeat_timeout_seconds=30,
        shutdown_timeout_seconds=30,
    )
    try:
        import jaxdse
        from tests.solvers.multiprocess_data import DSMI_SETTINGS, SIGMA, SLQ_SETTINGS, data

        x, z, y = data()
        mesh = jax.make_mesh((jax.device_count(),), ("data",))
        start = time.perf_counter()
        result = jaxdse.dse_estimate(
            x, sigma=SIGMA, solver=jaxdse.SLQ(mesh=mesh, **SLQ_SETTINGS), key=jax.random.key(0)
        )
        value = float(result.value)
        slq_s = time.perf_counter() - start
        mi = float(jaxdse.dsmi(z, y, key=jax.random.key(1), mesh=mesh, **DSMI_SETTINGS))
        print(
            json.dumps(
                dict(
                    process=jax.process_index(),
                    processes=jax.process_count(),
                    devices=jax.device_count(),
                    local_devices=jax.local_device_count(),
                    dse=value,
                    dsmi=mi,
                    slq_seconds=slq_s,
                )
            ),
            flush=True,
        )
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))

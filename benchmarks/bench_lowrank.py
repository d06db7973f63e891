"""Nystrom DSE on CPU: large-n wall time and peak RSS, and accuracy against the exact solver.

Writes benchmarks/results_lowrank.md. Sizes are arguments (the defaults are
the targets: n = 1,000,000, d = 64, m = 1024); data are generated in blocks.

    python benchmarks/bench_lowrank.py --n-large 1000000 --m-large 1024 --n-exact 8000 --m-exact 1024
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import jax
import numpy as np
import provenance

import jaxdse
from jaxdse import LowRankWarning, Nystrom

warnings.simplefilter("ignore", LowRankWarning)


def blobs(n, d, seed=0, classes=10, block=100_000):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)).astype(np.float32) * 4.0
    x = np.empty((n, d), np.float32)
    y = np.empty(n, np.int32)
    for s in range(0, n, block):
        b = min(block, n - s)
        y[s : s + b] = rng.integers(0, classes, b)
        x[s : s + b] = centres[y[s : s + b]] + rng.normal(size=(b, d)).astype(np.float32)
    return x, y


def manifold(n, d, seed=1, block=100_000):
    """A noisy closed curve (2 angles mapped through a random linear map) in d dimensions."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(4, d)).astype(np.float32)
    x = np.empty((n, d), np.float32)
    for s in range(0, n, block):
        b = min(block, n - s)
        th = rng.uniform(0, 2 * np.pi, (b, 2)).astype(np.float32)
        base = np.concatenate([np.cos(th), np.sin(th)], 1) * 3.0
        x[s : s + b] = base @ A + 0.1 * rng.normal(size=(b, d)).astype(np.float32)
    return x


def peak_rss_gib():
    """This process's peak RSS. VmHWM where Linux has it: ``ru_maxrss`` survives ``exec`` and so counts
    the RSS of the parent this process was forked from."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 2**20
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n-large", type=int, default=1_000_000)
    p.add_argument("--m-large", type=int, default=1024)
    p.add_argument("--n-exact", type=int, default=8000)
    p.add_argument("--m-exact", type=int, default=1024)
    p.add_argument("--n-mid", type=int, default=100_000, help="Nystrom against SLQ(num_probes=16) at this n (0: skip)")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--dsmi", action="store_true", help="also stream_dsmi with 10 classes at n-large")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results_lowrank.md"))
    p.add_argument("--one", nargs=2, metavar=("DATA", "CALL"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        return one(*a.one, a.n_large, a.m_large, a.d)
    commit = provenance.commit()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## Low-rank DSE (`Nystrom`) and streaming",
        "",
        f"commit {commit}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"`python {' '.join(sys.argv)}`, load: `{load}`",
        "",
        f"CPU ({os.cpu_count()} cores), jax {jax.__version__}, jaxdse {jaxdse.__version__}.",
        "",
    ]

    def emit(line=""):
        lines.append(line)
        print(line, flush=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")

    # Accuracy and speed-up against the exact solver.
    if a.n_exact:
        emit(f"### Nystrom (m = {a.m_exact}) against exact, n = {a.n_exact}, d = {a.d}")
        emit("")
        emit(
            "| data | sigma | exact DSE (bits) | Nystrom | error | indicator | covered (abs err <= 2 ind.) | exact s | Nystrom s | speed-up |"
        )
        emit("|---|---|---|---|---|---|---|---|---|---|")
        xb, _ = blobs(a.n_exact, a.d)
        xm = manifold(a.n_exact, a.d)
        for name, x in (("blobs", xb), ("manifold", xm)):
            med = float(jaxdse.kernels.resolved_sigma(x[:2000], "median"))
            for mult in (4.0, 1.0, 0.25):  # low, middle, high DSE
                sigma = med * mult
                exact, te = timed(lambda: float(jaxdse.dse(x, sigma=sigma)))
                solver = Nystrom(num_landmarks=a.m_exact)
                jaxdse.dse_estimate(x[:4096], sigma=sigma, solver=Nystrom(num_landmarks=a.m_exact), key=0)  # compile
                est, tn = timed(lambda: jaxdse.dse_estimate(x, sigma=sigma, solver=solver, key=0))
                err, ind = float(est.value) - exact, float(est.stderr)
                emit(
                    f"| {name} | {sigma:.3g} ({mult} x median) | {exact:.4f} | {float(est.value):.4f} | {err:+.4f} | "
                    f"{ind:.4f} | {'yes' if abs(err) <= 2 * ind else 'no'} | {te:.1f} | {tn:.1f} | {te / tn:.1f} |"
                )
        xb = xm = None  # free them before the large data sets
    emit("")
    if a.n_mid:
        emit(f"### Nystrom (m = {a.m_exact}) against `SLQ(num_probes=16)`, n = {a.n_mid}, d = {a.d}, sigma = median")
        emit("")
        emit("Times are single calls, compilation included (each compiles once at this n).")
        emit("")
        emit(
            "| data | SLQ DSE +- stderr (bits) | Nystrom DSE (bits) | indicator | Nystrom - SLQ | SLQ s | Nystrom s | speed-up |"
        )
        emit("|---|---|---|---|---|---|---|---|")
        for name in ("blobs", "manifold"):
            x = blobs(a.n_mid, a.d)[0] if name == "blobs" else manifold(a.n_mid, a.d)
            sigma = float(jaxdse.kernels.resolved_sigma(x[:2000], "median"))
            slq = jaxdse.SLQ(num_probes=16)
            s_est, ts = timed(lambda: jax.block_until_ready(jaxdse.dse_estimate(x, sigma=sigma, solver=slq, key=0)))
            solver = Nystrom(num_landmarks=a.m_exact)
            n_est, tn = timed(lambda: jax.block_until_ready(jaxdse.dse_estimate(x, sigma=sigma, solver=solver, key=0)))
            emit(
                f"| {name} | {float(s_est.value):.4f} +- {float(s_est.stderr):.4f} | {float(n_est.value):.4f} | "
                f"{float(n_est.stderr):.4f} | {float(n_est.value) - float(s_est.value):+.4f} | {ts:.1f} | {tn:.1f} | "
                f"{ts / tn:.1f}x |"
            )
            x = None
        emit("")
    emit(f"### Large n: n = {a.n_large}, d = {a.d}, m = {a.m_large}")
    emit("")
    emit(
        "Each call runs in a fresh process (`--one`): its peak RSS holds the data, JAX and that call alone; the wall "
        "time includes compilation."
    )
    emit("")
    emit("| data | call | value (bits) | indicator | wall s | peak RSS GiB |")
    emit("|---|---|---|---|---|---|")
    calls = [("blobs", "dse"), ("manifold", "dse")] + ([("blobs", "stream_dsmi")] if a.dsmi else [])
    for name, call in calls:
        cmd = [sys.executable, __file__, "--one", name, call, "--n-large", str(a.n_large), "--m-large", str(a.m_large)]
        out = subprocess.run(cmd + ["--d", str(a.d)], capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        what = f"dse, sigma = median {r['sigma']:.3g}" if call == "dse" else "stream_dsmi, 10 classes, 50 batches"
        emit(f"| {name} | {what} | {r['value']:.4f} | {r['indicator']:.4f} | {r['seconds']:.1f} | {r['rss']:.2f} |")


def one(name, call, n, m, d):
    """One large-n call in this (fresh) process: prints a JSON line with its value, time and peak RSS."""
    x, y = blobs(n, d) if name == "blobs" else (manifold(n, d), None)
    sigma = float(jaxdse.kernels.resolved_sigma(x[:2000], "median"))
    solver = Nystrom(num_landmarks=m)
    if call == "dse":
        est, t = timed(lambda: jax.block_until_ready(jaxdse.dse_estimate(x, sigma=sigma, solver=solver, key=0)))
    else:
        batches = lambda: iter(zip(np.array_split(x, 50), np.array_split(y, 50)))  # noqa: E731
        est, t = timed(lambda: jax.block_until_ready(jaxdse.stream_dsmi(batches, sigma=sigma, solver=solver, key=0)))
    result = dict(value=float(est.value), indicator=float(est.stderr), seconds=t, rss=peak_rss_gib(), sigma=sigma)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

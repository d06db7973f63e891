"""Cost of each representation measure at n = 2000, d = 64: DSE, DSMI and their peers.

Each measure is jitted on its own and timed on the same features (Gaussian
mixture of 10 classes, float32): compile time (lowering plus XLA compilation,
paid once per shape) apart from the steady state (median of repeated calls
after a warm-up, the measures interleaved so that load on a shared machine
hits all alike). Probes are fitted on another 2000 rows of the same mixture.
The last row is the evaluator of :mod:`jaxdse.monitor` computing all of them
in one compiled call.

    python benchmarks/bench_metrics.py                  # n = 2000, d = 64, 7 calls each
    python benchmarks/bench_metrics.py --n 1000 --repeats 5

Writes benchmarks/results_metrics.md (then run benchmarks/make_results.py).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # see the note in the written results

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from provenance import stamped  # noqa: E402  (benchmarks/ is on the path when run as a script)

import jaxdse  # noqa: E402
from jaxdse.metrics import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information  # noqa: E402
from jaxdse.monitor import knn_accuracy, make_representation_evaluator, ridge_accuracy  # noqa: E402

HERE = Path(__file__).resolve().parent


def machine():
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "numpy")}
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax device {jax.devices()[0].platform}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; load average {os.getloadavg()[0]:.1f}"
    )


def mixture(n, d, classes, seed):
    """Two samples (held-out, training) of n rows from the same mixture of ``classes`` Gaussians."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, d))
    y = np.arange(n) % classes
    return [((centres[y] + rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int32)) for _ in range(2)]


def measures(classes, max_class):
    """name -> (function of (z, y, z_train, y_train, key), what it computes)."""
    evaluate = make_representation_evaluator(num_classes=classes, max_class_size=max_class, sigma=10.0)
    return {
        "DSE": (lambda z, y, zt, yt, k: jaxdse.dse(z, sigma=10.0, t=1.0), "n x n eigenvalues"),
        "DSMI(Z; Y)": (
            lambda z, y, zt, yt, k: jaxdse.dsmi(
                z, y, key=k, sigma=10.0, t=1.0, num_classes=classes, max_class_size=max_class
            ),
            f"{classes} + 5 eigenvalue problems of {max_class} rows",
        ),
        "RankMe": (lambda z, y, zt, yt, k: rankme(z), "singular values of n x d"),
        "participation ratio": (lambda z, y, zt, yt, k: participation_ratio(z), "d x d covariance, no eigenvalues"),
        "alpha-ReQ": (lambda z, y, zt, yt, k: alpha_req(z), "d x d covariance eigenvalues"),
        "Renyi entropy (alpha 2)": (lambda z, y, zt, yt, k: renyi_entropy(z, sigma=10.0), "n x n eigenvalues"),
        "Renyi MI (alpha 2)": (
            lambda z, y, zt, yt, k: renyi_mutual_information(z, y, sigma=10.0),
            "3 n x n eigenvalue problems",
        ),
        "kNN probe (k 5)": (
            lambda z, y, zt, yt, k: knn_accuracy(zt, yt, z, y, num_classes=classes),
            "n x n distances, top-k",
        ),
        "ridge probe": (lambda z, y, zt, yt, k: ridge_accuracy(zt, yt, z, y, num_classes=classes), "d x d solve"),
        "all of them, one evaluator": (lambda z, y, zt, yt, k: evaluate(z, y, zt, yt, k), "one compiled call"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    command = ("python benchmarks/bench_metrics.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    (z, y), (zt, yt) = mixture(args.n, args.d, args.classes, 0)
    max_class = int(np.bincount(y).max())
    call_args = (jnp.asarray(z), jnp.asarray(y), jnp.asarray(zt), jnp.asarray(yt), jax.random.key(0))
    print(machine())
    compiled, compile_s, values = {}, {}, {}
    for name, (fn, _) in measures(args.classes, max_class).items():
        start = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(*call_args).compile()
        compile_s[name] = time.perf_counter() - start
        values[name] = jax.block_until_ready(compiled[name](*call_args))  # warm up
        print(f"compiled {name}: {compile_s[name]:.2f} s")
    times = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*call_args))
            times[name].append(time.perf_counter() - start)
    steady = {name: statistics.median(t) for name, t in times.items()}
    descriptions = {name: what for name, (_, what) in measures(args.classes, max_class).items()}
    lines = [
        "## Peer measures: cost per call",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        f"n = {args.n} held-out rows, d = {args.d} features, float32, a mixture of {args.classes} Gaussian classes",
        f"(probes fitted on another {args.n} rows). Each measure jitted alone; steady state = median of {args.repeats}",
        "calls after a warm-up (all measures interleaved); compile = lowering plus XLA compilation, paid once per shape.",
        "DSE, DSMI and the Renyi measures use sigma 10 (t 1); DSMI draws 5 comparison subsets per class.",
        "",
        "| measure | what dominates | steady (ms) | compile (s) | value |",
        "|---|---|---|---|---|",
    ]
    for name in compiled:
        v = values[name]
        shown = f"{float(v):.4g}" if np.ndim(v) == 0 and not isinstance(v, tuple) else "all"
        lines.append(f"| {name} | {descriptions[name]} | {1e3 * steady[name]:.1f} | {compile_s[name]:.2f} | {shown} |")
    lines += [
        "",
        "The machine is shared (2 cores, other processes running): absolute times move between runs, the ordering",
        "much less. BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1) as in the other benchmarks.",
        "",
    ]
    (HERE / "results_metrics.md").write_text(stamped("\n".join(lines)))
    for name in compiled:
        print(f"{name:>28}: {1e3 * steady[name]:9.1f} ms   compile {compile_s[name]:6.2f} s")
    print(f"wrote {HERE / 'results_metrics.md'}")


if __name__ == "__main__":
    main()

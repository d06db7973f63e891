"""Exact DSE and DSMI against the reference package, in the same run.

DSE: Gaussian data with d = 256 and n in {1000, 2000, 4000}, float32 for jaxdse
(float64 numpy for the reference, which is what it computes in). DSMI: n = 2000,
d = 256, 10 balanced classes, 5 repetitions. Every jaxdse function is jitted;
compile time (lowering + compilation) is reported apart from the steady state
(median of repeated calls). The reference has no compilation; its time is the
median of its calls.

    python benchmarks/bench_core.py                 # writes benchmarks/results_core.md and RESULTS.md
    python benchmarks/bench_core.py --sizes 1000 2000 --repeats 3

numpy's OpenBLAS kernel matters for the reference: the table records the one in
use (threadpoolctl). Run once as the machine is set up and once with
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` to see both.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

import jaxdse

HERE = Path(__file__).resolve().parent


def seconds(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def compile_seconds(jitted, *args):
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


def blas_kernel():
    try:
        from threadpoolctl import threadpool_info

        kinds = {i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"}
        return ", ".join(sorted(k for k in kinds if k)) or "n/a"
    except ImportError:
        return "unknown (threadpoolctl not installed)"


def bench_dse(sizes, repeats, d=256):
    import dse_dsmi

    rows = []
    for n in sizes:
        x = np.random.default_rng(n).normal(size=(n, d))
        x32 = x.astype(np.float32)
        row = {"n": n}
        for method in ("auto", "eigh"):
            f = jax.jit(lambda x, method=method: jaxdse.dse(x, method=method))
            compiled, c = compile_seconds(f, x32)
            value, s = seconds(lambda: compiled(x32), repeats)
            row[method] = (float(value), c, s)
        ref_repeats = max(1, repeats // 2) if n >= 4000 else repeats
        ref, rs = seconds(lambda: dse_dsmi.diffusion_spectral_entropy(x), ref_repeats)
        row["ref"] = (float(ref), rs)
        rows.append(row)
        print(
            f"DSE n={n}: auto {row['auto'][2]:.3f}s (compile {row['auto'][1]:.2f}s), eigh {row['eigh'][2]:.3f}s, "
            f"reference {rs:.3f}s, ratio {rs / row['auto'][2]:.1f}x, diff {row['auto'][0] - ref:+.2e} bits",
            flush=True,
        )
    return rows


def bench_dsmi(repeats, n=2000, d=256, classes=10):
    import dse_dsmi

    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, d))
    labels = np.repeat(np.arange(classes), n // classes)
    z = z + 0.3 * rng.normal(size=(classes, d))[labels]
    z32 = z.astype(np.float32)
    from jaxdse.dsmi import pad_size

    m = pad_size(n // classes, n)
    f = jax.jit(lambda z, y, k: jaxdse.dsmi(z, y, key=k, num_classes=classes, max_class_size=m))
    compiled, c = compile_seconds(f, z32, labels, jax.random.PRNGKey(0))
    keys = iter(jax.random.split(jax.random.PRNGKey(1), 100))
    value, s = seconds(lambda: compiled(z32, labels, next(keys)), repeats)
    ours = [float(compiled(z32, labels, k)) for k in jax.random.split(jax.random.PRNGKey(2), 10)]
    ref, rs = seconds(lambda: dse_dsmi.diffusion_spectral_mutual_information(z, labels.reshape(-1, 1))[0], repeats)
    refs = [dse_dsmi.diffusion_spectral_mutual_information(z, labels.reshape(-1, 1), random_seed=i)[0] for i in range(10)]
    print(
        f"DSMI n={n}: jaxdse {s:.3f}s (compile {c:.2f}s), reference {rs:.3f}s, ratio {rs / s:.1f}x; "
        f"mean over 10 keys {np.mean(ours):.4f} vs reference mean over 10 seeds {np.mean(refs):.4f}",
        flush=True,
    )
    return dict(n=n, d=d, classes=classes, pad=m, compile=c, steady=s, ref=rs, ours=ours, refs=refs)


def machine():
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "numpy", "scipy", "dse-dsmi")}
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax device {jax.devices()[0].platform}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; numpy OpenBLAS kernel: {blas_kernel()}"
    )


def write(dse_rows, dsmi_row, command):
    lines = [
        "## Exact DSE and DSMI against the reference",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        "DSE, Gaussian data, d = 256, jaxdse in float32 (jitted), reference `dse_dsmi.diffusion_spectral_entropy`",
        "(numpy float64, its own defaults: sigma 10, t 1). Steady state = median of repeated calls; compile = lowering",
        "plus XLA compilation, paid once per shape. Ratio = reference time / jaxdse steady-state time (default method).",
        "",
        "| n | jaxdse auto (s) | compile (s) | jaxdse eigh (s) | reference (s) | ratio | |difference| (bits) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in dse_rows:
        v, c, s = r["auto"]
        lines.append(
            f"| {r['n']} | {s:.3f} | {c:.2f} | {r['eigh'][2]:.3f} | {r['ref'][1]:.3f} | "
            f"{r['ref'][1] / s:.1f}x | {abs(v - r['ref'][0]):.1e} |"
        )
    if dsmi_row:
        d = dsmi_row
        lines += [
            "",
            f"DSMI, n = {d['n']}, d = {d['d']}, {d['classes']} balanced classes (padded to {d['pad']} rows), 5 repetitions,",
            "float32, one jitted call for all classes and repetitions; reference `diffusion_spectral_mutual_information`.",
            "",
            "| jaxdse (s) | compile (s) | reference (s) | ratio | mean of 10 keys (bits) | reference mean of 10 seeds (bits) |",
            "|---|---|---|---|---|---|",
            f"| {d['steady']:.3f} | {d['compile']:.2f} | {d['ref']:.3f} | {d['ref'] / d['steady']:.1f}x | "
            f"{np.mean(d['ours']):.4f} | {np.mean(d['refs']):.4f} |",
        ]
    lines += [
        "",
        "The machine is shared and has 2 cores: absolute times move between runs; the ratios come from the same run.",
        "",
    ]
    (HERE / "results_core.md").write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-dsmi", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_core.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(machine())
    dse_rows = bench_dse(args.sizes, args.repeats)
    dsmi_row = None if args.skip_dsmi else bench_dsmi(args.repeats)
    write(dse_rows, dsmi_row, command.strip())
    from make_results import merge

    merge()


if __name__ == "__main__":
    main()

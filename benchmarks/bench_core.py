"""Exact DSE and DSMI against the reference package, in the same run.

DSE: Gaussian data with d = 256 and n in {1000, 2000, 4000}, jaxdse in float32
and in float64 (compiled under ``jax.enable_x64``), the reference in float64
numpy, which is what it computes in. DSMI: n = 2000,
d = 256, 10 balanced classes, 5 repetitions. Every jaxdse function is jitted;
compile time (lowering + compilation) is reported apart from the steady state
(median of repeated calls, taking turns with the reference's calls so that the
machine's slow spells hit both). The reference has no compilation.

    python benchmarks/bench_core.py                 # writes benchmarks/results_core.md and RESULTS.md
    python benchmarks/bench_core.py --sizes 1000 2000 --repeats 3

numpy's OpenBLAS kernel matters for the reference: the table records the one in
use (threadpoolctl). The machine's default setting (OpenBLAS choosing its own
kernel) comes first; when ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` is set,
the default run happens in a subprocess without them and the tuned setting is
reported second (``--one-kernel`` skips that).
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
import jax.numpy as jnp
import numpy as np
from provenance import stamped  # noqa: E402  (benchmarks/ is on the path when run as a script)

import jaxdse

HERE = Path(__file__).resolve().parent


def interleaved(fns, repeats):
    """``[(last output, median seconds)]`` for each of ``fns``, called in turn ``repeats`` times.

    Taking turns spreads the machine's slow and fast spells over all of them,
    so their ratio is fairer than from back-to-back blocks of calls. A short
    pause before each call lets the previous library's BLAS threads, which
    spin for a while after a call, go idle first.
    """
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            time.sleep(0.25)
            start = time.perf_counter()
            outs[i] = jax.block_until_ready(fn())
            times[i].append(time.perf_counter() - start)
    return [(out, statistics.median(t)) for out, t in zip(outs, times)]


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
        compiled = {}
        for eigensolver in ("auto", "eigh"):
            f = jax.jit(lambda x, solver=jaxdse.Exact(eigensolver): jaxdse.dse(x, solver=solver))
            compiled[eigensolver], row[eigensolver] = compile_seconds(f, x32)
        with jax.enable_x64(True):
            # Compiled in float64; a float64 jax array keeps that dtype when called outside.
            x64 = jnp.asarray(x, dtype=jnp.float64)
            compiled["f64"], row["f64"] = compile_seconds(jax.jit(lambda x: jaxdse.dse(x)), x64)
        (auto, s), (eigh, se), (f64, s64), (ref, rs) = interleaved(
            [
                lambda: compiled["auto"](x32),
                lambda: compiled["eigh"](x32),
                lambda: compiled["f64"](x64),
                lambda: dse_dsmi.diffusion_spectral_entropy(x),
            ],
            max(3, repeats // 2) if n >= 4000 else repeats,
        )
        assert f64.dtype == np.float64, f64.dtype
        row["auto"] = (float(auto), row["auto"], s)
        row["eigh"] = (float(eigh), row["eigh"], se)
        row["f64"] = (float(f64), row["f64"], s64)
        row["ref"] = (float(ref), rs)
        row["load"] = os.getloadavg()
        rows.append(row)
        print(
            f"DSE n={n}: auto {row['auto'][2]:.3f}s (compile {row['auto'][1]:.2f}s), eigh {row['eigh'][2]:.3f}s, "
            f"float64 {s64:.3f}s, reference {rs:.3f}s, ratio {rs / row['auto'][2]:.1f}x (float64: "
            f"{rs / s64:.1f}x), diff {row['auto'][0] - ref:+.2e} bits (float64: {row['f64'][0] - ref:+.2e}), "
            f"load {row['load'][0]:.2f}",
            flush=True,
        )
    return rows


def bench_dsmi(repeats, n=2000, d=256, classes=10, num_keys=10):
    import dse_dsmi

    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, d))
    labels = np.repeat(np.arange(classes), n // classes)
    z = z + 0.3 * rng.normal(size=(classes, d))[labels]
    z32 = z.astype(np.float32)
    from jaxdse.mi.engine import pad_size

    m = pad_size(n // classes, n)
    row = dict(n=n, d=d, classes=classes, pad=m)
    calls = []
    for comparison in ("shared", "independent"):
        f = jax.jit(
            lambda z, y, k, c=comparison: jaxdse.dsmi(z, y, key=k, num_classes=classes, max_class_size=m, comparison=c)
        )
        compiled, c = compile_seconds(f, z32, labels, jax.random.PRNGKey(0))
        ours = [float(compiled(z32, labels, k)) for k in jax.random.split(jax.random.PRNGKey(2), num_keys)]
        row[comparison] = dict(compile=c, ours=ours)
        keys = iter(jax.random.split(jax.random.PRNGKey(1), 1000))
        calls.append(lambda compiled=compiled, keys=keys: compiled(z32, labels, next(keys)))
    calls.append(lambda: dse_dsmi.diffusion_spectral_mutual_information(z, labels.reshape(-1, 1))[0])
    (_, s_shared), (_, s_independent), (_, rs) = interleaved(calls, 4 * repeats)
    row["shared"]["steady"], row["independent"]["steady"] = s_shared, s_independent
    refs = [
        dse_dsmi.diffusion_spectral_mutual_information(z, labels.reshape(-1, 1), random_seed=i)[0]
        for i in range(num_keys)
    ]
    row.update(ref=rs, refs=refs, load=os.getloadavg())
    for comparison in ("shared", "independent"):
        r = row[comparison]
        print(
            f"DSMI n={n} ({comparison} comparison subsets): jaxdse {r['steady']:.4f}s (compile {r['compile']:.2f}s), "
            f"reference {rs:.3f}s, ratio {rs / r['steady']:.1f}x; mean over {num_keys} keys {np.mean(r['ours']):.4f} "
            f"+- {np.std(r['ours']):.4f} vs reference mean over {num_keys} seeds {np.mean(refs):.4f} +- {np.std(refs):.4f}; "
            f"load {row['load'][0]:.2f}",
            flush=True,
        )
    return row


def machine():
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "numpy", "scipy", "dse-dsmi")}
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax device {jax.devices()[0].platform}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; numpy OpenBLAS kernel: {blas_kernel()}"
    )


def load_text(load):
    return "load average " + ", ".join(f"{v:.2f}" for v in load)


def dse_table(rows):
    lines = [
        "| n | float32 auto (s) | compile (s) | float32 eigh (s) | float64 auto (s) | compile (s) | reference (s) "
        "| ratio float32 | ratio float64 | |difference| float32 (bits) | |difference| float64 (bits) | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v, c, s = r["auto"]
        v64, c64, s64 = r["f64"]
        lines.append(
            f"| {r['n']} | {s:.3f} | {c:.2f} | {r['eigh'][2]:.3f} | {s64:.3f} | {c64:.2f} | {r['ref'][1]:.3f} | "
            f"{r['ref'][1] / s:.1f}x | {r['ref'][1] / s64:.1f}x | {abs(v - r['ref'][0]):.1e} | "
            f"{abs(v64 - r['ref'][0]):.1e} | {r['load'][0]:.2f} |"
        )
    return lines


def dsmi_table(d):
    lines = [
        f"| comparison subsets | jaxdse (s) | compile (s) | reference (s) | ratio | mean +- sd of {len(d['refs'])} keys (bits) "
        f"| reference, {len(d['refs'])} seeds (bits) |",
        "|---|---|---|---|---|---|---|",
    ]
    for comparison in ("shared", "independent"):
        r = d[comparison]
        lines.append(
            f"| {comparison}{' (default)' if comparison == 'shared' else ''} | {r['steady']:.4f} | {r['compile']:.2f} "
            f"| {d['ref']:.3f} | {d['ref'] / r['steady']:.1f}x | {np.mean(r['ours']):.4f} +- {np.std(r['ours']):.4f} "
            f"| {np.mean(d['refs']):.4f} +- {np.std(d['refs']):.4f} |"
        )
    shared, independent = d["shared"]["steady"], d["independent"]["steady"]
    lines += [
        "",
        f"Where the DSMI speed-up comes from ({load_text(d['load'])}): with independent subsets jaxdse solves as many "
        f"eigenvalue problems as the reference (60) and is {d['ref'] / independent:.1f}x faster (batched, compiled "
        f"float32 eigenvalues); sharing the comparison subsets (15 problems) adds a further "
        f"{independent / shared:.1f}x, for {d['ref'] / shared:.1f}x in all.",
    ]
    return lines


def write(runs, command):
    """``runs``: ``[(label, machine, dse_rows, dsmi_row)]``, one per OpenBLAS setting."""
    lines = [
        "## Exact DSE and DSMI against the reference",
        "",
        f"Command: `{command}`  ",
        f"Machine: {runs[0][1]}",
        "",
        "DSE, Gaussian data, d = 256, jaxdse jitted in float32 and in float64 (default exact solver `Exact()`, and",
        "float32 `Exact('eigh')`), reference `dse_dsmi.diffusion_spectral_entropy` (numpy float64, its own defaults:",
        "sigma 10, t 1). Steady state = median of repeated calls, the four functions taking turns; compile = lowering",
        "plus XLA compilation, paid once per shape. Ratio = reference time / jaxdse steady-state time (default solver).",
        "The load average (2 cores shared with other work) is taken after each size.",
        "",
        "DSMI: 10 balanced classes with shifted means, 5 repetitions, float32, one jitted call; reference",
        "`diffusion_spectral_mutual_information` with its defaults. The reference reseeds its generator for every class,",
        "so equal-size classes share their random subsets and it computes the same 5 subsets' DSE 10 times; jaxdse's",
        "default (`comparison='shared'`) draws the subsets the same way and computes each once (10 + 5 eigenvalue",
        "problems instead of 60). `comparison='independent'` draws fresh subsets per class (60 problems).",
    ]
    for label, mach, dse_rows, dsmi_row in runs:
        lines += ["", f"### {label}", "", f"numpy's OpenBLAS kernel: {mach.split('numpy OpenBLAS kernel: ')[-1]}", ""]
        lines += dse_table(dse_rows)
        if dsmi_row:
            d = dsmi_row
            lines += [
                "",
                f"DSMI, n = {d['n']}, d = {d['d']}, {d['classes']} classes of {d['n'] // d['classes']} (padded to "
                f"{d['pad']} rows):",
                "",
            ] + dsmi_table(d)
    lines += ["", "Targets (ratio = reference / jaxdse, same run):", ""]
    for label, _, dse_rows, dsmi_row in runs:
        big = max(dse_rows, key=lambda r: r["n"])
        ratio = big["ref"][1] / big["auto"][2]
        diff = abs(big["auto"][0] - big["ref"][0])
        text = (
            f"- {label}: DSE at n = {big['n']} {ratio:.1f}x in float32 (target 5x) with {diff:.1e} bits (target "
            f"1e-3), {big['ref'][1] / big['f64'][2]:.1f}x in float64"
        )
        if dsmi_row:
            text += f"; DSMI {dsmi_row['ref'] / dsmi_row['shared']['steady']:.1f}x (target 3x)"
        lines.append(text + ".")
    lines += [
        "",
        "The machine has 2 cores shared with other work: absolute times move between runs; the ratios come from",
        "the same run.",
        "",
    ]
    (HERE / "results_core.md").write_text(stamped("\n".join(lines)))


def run_all(args):
    print(machine(), flush=True)
    dse_rows = bench_dse(args.sizes, args.repeats)
    dsmi_row = None if args.skip_dsmi else bench_dsmi(args.repeats, num_keys=args.keys)
    return machine(), dse_rows, dsmi_row


def main(argv=None):
    import json
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-dsmi", action="store_true")
    parser.add_argument("--keys", type=int, default=10, help="DSMI keys (jaxdse) and seeds (reference) for the means")
    parser.add_argument(
        "--one-kernel", action="store_true", help="only the machine's own OpenBLAS setting (no second run)"
    )
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(run_all(args)))
        return
    command = "python benchmarks/bench_core.py " + " ".join(sys.argv[1:] if argv is None else argv)
    tuned = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    runs = []
    if tuned and not args.one_kernel:
        # The machine's default first: numpy's OpenBLAS choosing its own kernel.
        env = {k: v for k, v in os.environ.items() if k not in tuned}
        out = HERE / "_core_default_run.json"
        forwarded = ["--sizes", *map(str, args.sizes), "--repeats", str(args.repeats), "--keys", str(args.keys)]
        forwarded += ["--skip-dsmi"] if args.skip_dsmi else []
        subprocess.run([sys.executable, __file__, *forwarded, "--json-out", str(out)], env=env, check=True)
        runs.append(("OpenBLAS default (no OPENBLAS_* settings)",) + tuple(json.loads(out.read_text())))
        out.unlink()
    label = (
        "With " + " and ".join(f"{k}={v}" for k, v in tuned.items())
        if tuned
        else "OpenBLAS default (no OPENBLAS_* settings)"
    )
    runs.append((label,) + run_all(args))
    write(runs, command.strip())
    from make_results import merge

    merge()


if __name__ == "__main__":
    main()

"""The accuracy harness: every solver and DSMI against a float64 numpy reference.

    python benchmarks/bench_accuracy.py                 # the grid at n = 1000 and the SLQ table; writes results_accuracy.md
    python benchmarks/bench_accuracy.py --n 600 --no-table --large 0   # a smaller grid only

The grid (``benchmarks/accuracy.py``, shared with the fast tier in
``tests/test_accuracy.py``): six data families, bandwidths from the rules and
from multiples of the median distance, t = 1, 10, 100, a masked cell and a DSMI
cell per family; every solver against the float64 reference at an absolute
tolerance in bits, the stochastic ones over 8 keys (worst error, mean error over
the keys, mean stderr, and how often ``|error| <= 2 stderr``). The table:
Gaussian data (d = 256, seed 13) at n = 2000 and 8000, exact against
``SLQ()``, with steady-state times. Beyond the exact solver's reach: every family
at n = 100,000, ``Nystrom`` against ``SLQ(num_probes=16)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import accuracy as grid  # noqa: E402
from benchmarks.provenance import stamp  # noqa: E402

OUT = Path(__file__).with_name("results_accuracy.md")
COVER_SLACK = 1e-5  # bits: float32 rounding of a value of up to ~17 bits


def run_grid(n, d, num_keys):
    cells = grid.grid(n=n, d=d)
    rows = {m.name: [] for m in grid.methods(num_keys)}
    for i, cell in enumerate(cells):
        ref = grid.reference(cell)
        for m in grid.methods(num_keys):
            if not m.applies(cell):
                continue
            t0 = time.perf_counter()
            values, stderrs = grid.evaluate(cell, m)
            rows[m.name].append((cell, ref, values - ref, stderrs, time.perf_counter() - t0))
        print(f"[{i + 1}/{len(cells)}] {cell.label()}", flush=True)
    return rows


def grid_report(rows, methods, n, d):
    lines = [f"### The grid: n = {n}, d = {d}, t = 1, 10, 100", ""]
    lines += [
        "Errors in bits against the float64 reference; for stochastic solvers the worst over the keys, the mean over",
        "the keys (bias), the mean stderr and the share of (key, t) with |error| <= 2 stderr + 1e-5. Nystrom's stderr",
        "is its error indicator, and its tolerance 0.01 bits plus the indicator. Cells on kernels that are not positive",
        "semi-definite (the knn rule) are listed apart for SLQ: there its Gauss-Radau node sits at the lowest Ritz",
        "value instead of 0 and `SLQ()` runs 40 Lanczos steps instead of 20.",
        "",
        "| solver | tolerance (bits) | cells | within tolerance | worst error | worst bias | coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        for part, r in _parts(m, rows[m.name]):
            if not r:
                continue
            worst = max(float(np.max(np.abs(e))) for _, _, e, _, _ in r)
            bias = max(float(np.max(np.abs(e.mean(0)))) for _, _, e, _, _ in r)
            ok = sum(m.within(e, s) for _, _, e, s, _ in r)
            covered = np.concatenate([(np.abs(e) <= 2 * s + COVER_SLACK).ravel() for _, _, e, s, _ in r])
            cov = f"{100 * covered.mean():.1f}%" if m.stochastic else "-"
            tol = f"{m.tolerance:g}" + (" + indicator" if m.plus_indicator else "")
            lines.append(f"| {m.name}{part} | {tol} | {len(r)} | {ok} | {worst:.2e} | {bias:.2e} | {cov} |")
    lines.append("")
    for m in methods:
        tol = f"{m.tolerance:g} bits" + (" + indicator" if m.plus_indicator else "")
        lines += [f"#### {m.name} (tolerance {tol}{f', {m.num_keys} keys' if m.stochastic else ''})", ""]
        lines += [
            "| cell | reference (t = 1, 10, 100) | worst error | bias | stderr | coverage | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for cell, ref, e, s, sec in rows[m.name]:
            cov = np.mean(np.abs(e) <= 2 * s + COVER_SLACK)
            flag = "" if m.within(e, s) else " **out**"
            lines.append(
                f"| {cell.label()} | {', '.join(f'{v:.4f}' for v in ref)} | {np.max(np.abs(e)):.1e}{flag} | "
                f"{np.max(np.abs(e.mean(0))):.1e} | {np.mean(s):.1e} | {100 * cov:.0f}% | {sec:.1f} |"
            )
        lines.append("")
    return lines


def _indefinite(cell):
    return bool(cell.kernel) or cell.sigma == "knn"


def _parts(m, r):
    """The rows of one method: SLQ's cells on indefinite kernels apart from the rest."""
    if not m.stochastic or m.plus_indicator:
        return [("", r)]
    return [
        ("", [x for x in r if not _indefinite(x[0])]),
        (" (indefinite kernels)", [x for x in r if _indefinite(x[0])]),
    ]


def timed(fn, repeats=3, warm=True):
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def slq_table():
    import jax

    import jaxdse

    lines = [
        "### Exact against `SLQ()` on Gaussian data",
        "",
        "x = `np.random.default_rng(13).normal(size=(n, 256))`, float32, t = 1. Reference: float64 numpy. SLQ: keys",
        "1, 2, 3 and the mean over keys 1..8 (bias); times: steady state (median of 3 calls after the compiling one, one call\nat n = 8000), seconds, on a shared machine: the ratio is the figure to read.",
        "",
        "| n | sigma | reference | exact float32 | SLQ keys 1, 2, 3 | stderr | mean of 8 keys - reference | exact s | SLQ s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, sigmas in ((2000, (10.0, 60.0, 80.0)), (8000, (10.0, 25.0, 60.0))):
        x = np.random.default_rng(13).normal(size=(n, 256)).astype(np.float32)
        for sigma in sigmas:
            ref = float(grid.reference_dse(x, sigma, np.array([1.0]))[0])
            exact = jax.jit(lambda x, s: jaxdse.dse(x, sigma=s))
            approx = jax.jit(lambda x, s, k: jaxdse.dse_estimate(x, sigma=s, solver=jaxdse.SLQ(), key=k))
            ex = float(exact(x, sigma))
            ests = [approx(x, sigma, jax.random.key(k)) for k in range(1, 9)]
            vals = np.array([float(e.value) for e in ests])
            # The calls above compiled both; one more call each is the steady-state time at n = 8000.
            t_exact = timed(lambda: exact(x, sigma).block_until_ready(), repeats=1 if n > 4000 else 3, warm=False)
            t_slq = timed(lambda: approx(x, sigma, jax.random.key(1)).value.block_until_ready(), warm=False)
            lines.append(
                f"| {n} | {sigma:g} | {ref:.4f} | {ex:.4f} | {', '.join(f'{v:.4f}' for v in vals[:3])} | "
                f"{float(ests[0].stderr):.4f} | {vals.mean() - ref:+.4f} | {t_exact:.2f} | {t_slq:.2f} | "
                f"{t_exact / t_slq:.1f}x |"
            )
            print(lines[-1], flush=True)
    return lines + [""]


LARGE_TOLERANCE = 0.01  # bits, plus Nystrom's indicator and twice SLQ's stderr


def large_rows(n, d, m, *, families=tuple(grid.FAMILIES), num_probes=16, t=(1.0, 10.0, 100.0)):
    """Nystrom against SLQ on every family at a size no exact reference reaches.

    Neither is exact here, so a cell is within tolerance when ``|Nystrom - SLQ|
    <= 0.01 + indicator + 2 stderr`` at every t: Nystrom's error indicator and
    SLQ's sampling bar both widen what the two may differ by. The bandwidth is
    the median distance (float64 numpy) of 2000 rows drawn at random.
    """
    import jax

    import jaxdse

    rows = []
    for fam in families:
        x, _ = grid.make_data(fam, n, d)
        sample = np.random.default_rng(0).choice(n, size=min(n, 2000), replace=False)
        sigma = float(grid.median_distance(x[sample]))
        tt = np.asarray(t, np.float32)
        found = {}
        for name, solver in (("slq", jaxdse.SLQ(num_probes=num_probes)), ("nystrom", jaxdse.Nystrom(num_landmarks=m))):
            t0 = time.perf_counter()
            est = jax.block_until_ready(jaxdse.dse_estimate(x, sigma=sigma, t=tt, solver=solver, key=0))
            found[name] = (np.asarray(est.value, np.float64), np.asarray(est.stderr, np.float64))
            found[name + " s"] = time.perf_counter() - t0
        (sv, se), (nv, ni) = found["slq"], found["nystrom"]
        allowed = LARGE_TOLERANCE + ni + 2 * se
        rows.append(
            dict(
                family=fam,
                sigma=sigma,
                slq=sv,
                stderr=se,
                nystrom=nv,
                indicator=ni,
                within=bool(np.all(np.abs(nv - sv) <= allowed)),
                slq_s=found["slq s"],
                nystrom_s=found["nystrom s"],
            )
        )
        print(f"[large] {fam}: SLQ {sv} +- {se}, Nystrom {nv} (indicator {ni})", flush=True)
    return rows


def large_report(rows, n, d, m, num_probes=16):
    def each(v, fmt="{:.4f}"):
        return ", ".join(fmt.format(float(a)) for a in np.atleast_1d(v))

    ok = sum(r["within"] for r in rows)
    lines = [
        f"### Beyond exact: `Nystrom(num_landmarks={m})` against `SLQ(num_probes={num_probes})`, n = {n}, d = {d}",
        "",
        "Every family at one bandwidth (the median distance of 2000 random rows), t = 1, 10, 100, key 0. Neither",
        f"solver is exact here: a cell is within tolerance when |Nystrom - SLQ| <= {LARGE_TOLERANCE:g} + indicator + 2",
        f"stderr at every t. **{ok} of {len(rows)} cells within tolerance.** Times are single calls, compilation",
        "included.",
        "",
        "| family | sigma | SLQ (t = 1, 10, 100) | SLQ stderr | Nystrom | indicator | Nystrom - SLQ | within | SLQ s | Nystrom s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['sigma']:.3g} | {each(r['slq'])} | {each(r['stderr'])} | {each(r['nystrom'])} | "
            f"{each(r['indicator'])} | {each(r['nystrom'] - r['slq'], '{:+.4f}')} | "
            f"{'yes' if r['within'] else '**no**'} | {r['slq_s']:.0f} | {r['nystrom_s']:.1f} |"
        )
    return lines + [""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--no-table", action="store_true", help="skip the n = 2000 / 8000 SLQ table")
    parser.add_argument("--no-grid", action="store_true", help="skip the grid")
    parser.add_argument("--large", type=int, default=100_000, help="n of the Nystrom / SLQ section (0: skip)")
    parser.add_argument("--landmarks", type=int, default=1024, help="Nystrom's landmarks in that section")
    parser.add_argument("--out", default=str(OUT), help="the results file (default benchmarks/results_accuracy.md)")
    args = parser.parse_args(argv)
    lines = ["## Accuracy against a float64 reference", "", stamp(), ""]
    if not args.no_table:
        lines += slq_table()
    methods = grid.methods(args.keys)
    if not args.no_grid:
        lines += grid_report(run_grid(args.n, args.d, args.keys), methods, args.n, args.d)
    if args.large:
        lines += large_report(large_rows(args.large, args.d, args.landmarks), args.large, args.d, args.landmarks)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Estimator comparison in miniature (as in the paper's comparison of estimators): DSMI vs CSMI, MINE and KSG.

Three Gaussian blobs (``sklearn.datasets.make_blobs``: unit within-blob std per
coordinate, centres uniform in [-10, 10]^d), labels = blob, for several
dimensions d; DSMI with ``sigma = sqrt(d)``. MINE runs with the paper's
settings (MLP 100-100, Adam 1e-4, batch 500, 200 epochs) on one-hot labels; KSG
(k = 3) sees the labels as a numeric column, as NPEET does. All values in
bits. Every estimator is called four times: the first call includes compilation,
the steady state is the median of the other three (fresh keys, same shapes).

Also: MINE (defaults) and KSG on correlated Gaussians with a known answer.

    python benchmarks/bench_estimators.py            # n = 2000, d in 20 100 1000 10000
    python benchmarks/bench_estimators.py --n 1000 --dims 20 100

Writes benchmarks/results_estimators.md and benchmarks/estimators.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
from provenance import stamped  # noqa: E402  (benchmarks/ is on the path when run as a script)

from jaxdse.baselines import csmi, ksg, mine

HERE = Path(__file__).resolve().parent


def timed(fn):
    """(value as float, seconds) of ``fn()``, waiting for the result."""
    start = time.perf_counter()
    out = fn()
    value = float(jax.block_until_ready(out))
    return value, time.perf_counter() - start


def twice(fn, steady_calls=3):
    """Call ``fn(key)`` with fresh keys: value of the second call, first-call seconds and
    the median seconds of ``steady_calls`` further calls (same shapes, compiled)."""
    _, first = timed(lambda: fn(jax.random.key(0)))
    runs = [timed(lambda i=i: fn(jax.random.key(1 + i))) for i in range(steady_calls)]
    return runs[0][0], first, float(np.median([seconds for _, seconds in runs]))


def blobs(n, d, seed=0):
    from sklearn.datasets import make_blobs

    z, labels = make_blobs(n_samples=n, n_features=d, centers=3, cluster_std=1.0, random_state=seed)
    return z.astype(np.float32), labels.astype(np.int32)


def dsmi_fn():
    try:
        from jaxdse import dsmi
    except ImportError:
        return None
    return dsmi


def reference_dsmi(z, labels, sigma):
    try:
        import dse_dsmi
    except ImportError:
        return None, None
    start = time.perf_counter()
    value = dse_dsmi.diffusion_spectral_mutual_information(z.astype(np.float64), labels, gaussian_kernel_sigma=sigma)[0]
    return float(value), time.perf_counter() - start


def compare(n, dims, mine_epochs):
    dsmi = dsmi_fn()
    rows = []
    for d in dims:
        z, labels = blobs(n, d)
        sigma = float(np.sqrt(d))
        onehot = np.eye(3, dtype=np.float32)[labels]
        row = {"d": d}
        if dsmi is not None:
            row["DSMI"] = twice(lambda k: dsmi(z, labels, key=k, sigma=sigma))
        row["CSMI"] = twice(lambda k: csmi(z, labels, key=k))
        row["KSG"] = twice(lambda k: ksg(z, labels.astype(np.float32)))
        row["MINE"] = twice(
            lambda k: (
                mine(z, onehot, key=k, learning_rate=1e-4, batch_size=min(500, int(0.8 * n)), epochs=mine_epochs).value
            )
        )
        row["ref DSMI"] = reference_dsmi(z, labels, sigma)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row):
    parts = [f"d={row['d']:>6}"]
    for name in ("DSMI", "CSMI", "MINE", "KSG"):
        if name in row:
            v, first, steady = row[name]
            parts.append(f"{name} {v:7.3f} bits ({first:6.2f}s first, {steady:6.2f}s steady)")
    if row.get("ref DSMI", (None,))[0] is not None:
        parts.append(f"dse_dsmi DSMI {row['ref DSMI'][0]:.3f} bits ({row['ref DSMI'][1]:.2f}s)")
    return " | ".join(parts)


def accuracy():
    """MINE (defaults) and KSG on correlated Gaussians: rho = 0.8 per pair."""
    rng = np.random.default_rng(0)
    out = []
    for pairs, n_mine, n_ksg in ((1, 5000, 2000), (5, 5000, 2000)):
        truth = -0.5 * np.log2(1 - 0.64) * pairs
        x = rng.normal(size=(n_mine, pairs))
        y = 0.8 * x + 0.6 * rng.normal(size=(n_mine, pairs))
        mine_value, mine_first, mine_steady = twice(lambda k: mine(x, y, key=k).value)
        ksg_value, ksg_first, ksg_steady = twice(lambda k: ksg(x[:n_ksg], y[:n_ksg]))
        out.append((2 * pairs, truth, n_mine, mine_value, mine_first, mine_steady, n_ksg, ksg_value, ksg_steady))
        print(
            f"{2 * pairs}-d Gaussian, true {truth:.3f} bits: MINE (n={n_mine}, defaults) {mine_value:.3f} "
            f"({mine_first:.1f}s first, {mine_steady:.1f}s steady); KSG (n={n_ksg}) {ksg_value:.3f} ({ksg_steady:.2f}s)",
            flush=True,
        )
    return out


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("jax", "jaxlib", "flax", "optax", "numpy", "scikit-learn", "dse-dsmi")
        if _installed(p)
    )
    return (
        f"{cpu}, {os.cpu_count()} CPU cores, {jax.devices()[0].platform}; Python {platform.python_version()}; "
        f"{versions}"
    )


def _installed(p):
    try:
        metadata.version(p)
        return True
    except metadata.PackageNotFoundError:
        return False


def write_markdown(rows, acc, n, mine_epochs, command, info):
    lines = [
        "## Estimator comparison (3 Gaussian blobs)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {info}",
        "",
        f"n = {n} points, 3 blobs (`make_blobs`, cluster_std 1, centres in [-10, 10]^d), labels = blob, "
        f"float32. DSMI: `jaxdse.dsmi` (exact solver), sigma = sqrt(d), t = 1, 5 repetitions. CSMI: 2 bins per feature. "
        f"MINE: paper settings (100-100 MLP, Adam 1e-4, batch 500, {mine_epochs} epochs, 20% held out), one-hot "
        "labels. KSG: k = 3, labels as a numeric column. `dse_dsmi` is the reference package's DSMI (float64, "
        "numpy). Values in bits; times in seconds, first call (with compilation) / steady state (median of three further calls).",
        "",
        "| d | DSMI | CSMI | MINE | KSG | dse_dsmi DSMI | DSMI s | CSMI s | MINE s | KSG s | dse_dsmi s | MINE / DSMI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:

        def val(name):
            return f"{row[name][0]:.3f}" if name in row else "n/a"

        def sec(name):
            return f"{row[name][1]:.2f} / {row[name][2]:.2f}" if name in row else "n/a"

        ref_v, ref_t = row.get("ref DSMI", (None, None))
        ratio = f"{row['MINE'][2] / row['DSMI'][2]:.0f}x" if "DSMI" in row else "n/a"
        lines.append(
            f"| {row['d']} | {val('DSMI')} | {val('CSMI')} | {val('MINE')} | {val('KSG')} | "
            f"{'n/a' if ref_v is None else f'{ref_v:.3f}'} | {sec('DSMI')} | {sec('CSMI')} | {sec('MINE')} | "
            f"{sec('KSG')} | {'n/a' if ref_t is None else f'{ref_t:.2f}'} | {ratio} |"
        )
    lines += [
        "",
        "MINE / DSMI is the ratio of steady-state times. Plot: `benchmarks/estimators.png`.",
        "",
        "### Accuracy on correlated Gaussians (rho = 0.8 per pair)",
        "",
        "| dims | true bits | MINE (defaults) | MINE n | MINE s first / steady | KSG (k=3) | KSG n | KSG s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dims, truth, n_mine, mv, mf, ms, n_ksg, kv, ks in acc:
        lines.append(
            f"| {dims} | {truth:.3f} | {mv:.3f} ({100 * (mv - truth) / truth:+.1f}%) | {n_mine} | {mf:.1f} / {ms:.1f} | "
            f"{kv:.3f} ({100 * (kv - truth) / truth:+.1f}%) | {n_ksg} | {ks:.2f} |"
        )
    lines += [
        "",
        "MINE defaults: Adam 1e-3, batch 500, 100 epochs, estimate = mean held-out bound of the last 10 epochs. "
        "In 10 dimensions KSG is biased low (a known property of kNN estimators), MINE less so. Both vary "
        "from sample to sample: one row is one sample.",
        "",
        "Notes. CSMI is negative at low d, as in the reference package: every subset is min-max scaled to its "
        "own range, so a tight class fills the bins while a random subset spanning three blobs leaves most "
        "cells empty; at d >= 1000 every binned row is unique and CSMI is exactly 0. KSG sees the labels as a "
        "numeric column (with ties), which makes it 0 as soon as the max-norm neighbourhoods in z exceed the "
        "label spacing. Times on a 2-core machine shared with other work: steady-state times can vary by 2x "
        "between runs.",
        "",
    ]
    (HERE / "results_estimators.md").write_text(stamped("\n".join(lines)))


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_v, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    dims = [r["d"] for r in rows]
    for name, style in (("DSMI", "o-"), ("CSMI", "s-"), ("MINE", "^-"), ("KSG", "v-")):
        if name in rows[0]:
            ax_v.plot(dims, [r[name][0] for r in rows], style, label=name)
            ax_t.plot(dims, [r[name][2] for r in rows], style, label=name)
    if rows[0].get("ref DSMI", (None,))[0] is not None:
        ax_v.plot(dims, [r["ref DSMI"][0] for r in rows], "k--", label="dse_dsmi DSMI")
        ax_t.plot(dims, [r["ref DSMI"][1] for r in rows], "k--", label="dse_dsmi DSMI")
    ax_v.set(xscale="log", xlabel="dimension d", ylabel="I(Z; Y) [bits]", title="Value (3 blobs, labels)")
    ax_t.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="seconds (steady state)", title="Runtime")
    ax_v.axhline(np.log2(3), color="gray", lw=0.5)
    ax_v.legend()
    ax_t.legend()
    fig.tight_layout()
    fig.savefig(HERE / "estimators.png", dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dims", type=int, nargs="+", default=[20, 100, 1000, 10000])
    parser.add_argument("--mine-epochs", type=int, default=200)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    info = machine()
    print(command)
    print(info)
    if dsmi_fn() is None:
        print("jaxdse.dsmi is not available: the DSMI column is left out")
    rows = compare(args.n, args.dims, args.mine_epochs)
    acc = [] if args.skip_accuracy else accuracy()
    write_markdown(rows, acc, args.n, args.mine_epochs, command, info)
    plot(rows)
    print(f"wrote {HERE / 'results_estimators.md'} and {HERE / 'estimators.png'}")


if __name__ == "__main__":
    main()

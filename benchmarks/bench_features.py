"""Random Fourier features against Nystrom landmarks: which rank-m factor gives the better DSE.

Both approximate the Gaussian kernel ``K ~ F F^T`` with m columns, and both give the
diffusion spectrum from the m x m matrix ``F^T D^-1 F`` (degrees ``F (F^T 1)``) at the
same order of cost, O(n m (d + m)). Nystrom's factor is built from m landmark rows
(``jaxdse.Nystrom``); random Fourier features (Rahimi and Recht) from m / 2 frequencies
``w ~ N(0, I / sigma^2)``, ``F = [cos(x w), sin(x w)] / sqrt(m / 2)``, independent of the data.
The features are written here in numpy float64, from that definition. Both are compared
with a float64 reference (``benchmarks/accuracy.py``) on the data of ``bench_lowrank.py``
at three bandwidths; three keys each.

    python benchmarks/bench_features.py                 # n = 4000, d = 64, m = 256 and 1024

Writes benchmarks/results_features.md.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import jax
import numpy as np
from accuracy import median_distance, reference_dse, reference_entropy
from bench_lowrank import blobs, manifold
from provenance import stamp  # benchmarks/ is on the path when run as a script

import jaxdse

OUT = Path(__file__).with_name("results_features.md")
KEYS = (0, 1, 2)


def fourier_dse(x, sigma, m, seed, t=1.0):
    """DSE (bits) from m random Fourier features of the Gaussian kernel, in float64.

    Also returns how many rows got a degree <= 0 (the factor's row sums need not be
    positive); those are clipped to the smallest positive degree.
    """
    x = np.asarray(x, np.float64)
    w = np.random.default_rng(seed).normal(size=(x.shape[1], m // 2)) / sigma
    proj = x @ w
    f = np.concatenate([np.cos(proj), np.sin(proj)], axis=1) / np.sqrt(m // 2)
    deg = f @ f.sum(0)
    bad = int(np.sum(deg <= 0))
    deg = np.where(deg > 0, deg, deg[deg > 0].min())
    lam = np.linalg.eigvalsh((f / deg[:, None]).T @ f)
    return float(reference_entropy(lam, t)[0]), bad


def rows(n, d, ms, multiples):
    out = []
    for name, x in (("blobs", blobs(n, d)[0]), ("manifold", manifold(n, d))):
        med = median_distance(x[np.random.default_rng(0).choice(n, size=min(n, 2000), replace=False)])
        for c in multiples:
            sigma = c * med
            ref = float(reference_dse(x, sigma, np.array([1.0]))[0])
            for m in ms:
                solver = jaxdse.Nystrom(num_landmarks=m)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", jaxdse.LowRankWarning)
                    nys = [jaxdse.dse_estimate(x, sigma=sigma, solver=solver, key=k) for k in KEYS]
                four = [fourier_dse(x, sigma, m, seed=k) for k in KEYS]
                out.append(
                    dict(
                        data=name,
                        multiple=c,
                        sigma=sigma,
                        reference=ref,
                        m=m,
                        nystrom=np.array([float(e.value) for e in nys]) - ref,
                        indicator=float(np.mean([float(e.stderr) for e in nys])),
                        fourier=np.array([v for v, _ in four]) - ref,
                        nonpositive=max(b for _, b in four),
                    )
                )
                r = out[-1]
                print(f"{name} {c} x median m={m}: nystrom {r['nystrom']}, fourier {r['fourier']}", flush=True)
    return out


def report(results, n, d):
    def spread(e):
        return f"{e.mean():+.4f} ({e.min():+.4f} to {e.max():+.4f})"

    worse = [abs(r["fourier"]).mean() / max(abs(r["nystrom"]).mean(), 1e-12) for r in results]
    lines = [
        "## Random Fourier features against Nystrom landmarks",
        "",
        stamp(),
        "",
        f"n = {n}, d = {d}, the data of `bench_lowrank.py`, t = 1; errors in bits against the float64 reference,",
        f"mean over keys {', '.join(map(str, KEYS))} (range in brackets). Nystrom: `jaxdse.Nystrom(num_landmarks=m)`",
        "(uniform landmarks) with its indicator; Fourier: m / 2 frequencies, cos and sin, float64 numpy. The last",
        "column counts rows whose approximate degree was <= 0 (worst key).",
        "",
        "| data | sigma | reference | m | Nystrom error | indicator | Fourier error | Fourier degrees <= 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['data']} | {r['sigma']:.3g} ({r['multiple']:g} x median) | {r['reference']:.4f} | {r['m']} | "
            f"{spread(r['nystrom'])} | {r['indicator']:.4f} | {spread(r['fourier'])} | {r['nonpositive']} |"
        )
    lines += [
        "",
        f"Mean |error| of the features over Nystrom's, per row: {min(worse):.1f}x to {max(worse):.1f}x "
        f"(median {np.median(worse):.1f}x).",
        "",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--m", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--multiples", type=float, nargs="+", default=[4.0, 1.0, 0.25])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", False)
    lines = report(rows(args.n, args.d, args.m, args.multiples), args.n, args.d)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

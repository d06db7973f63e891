"""Draw the figures of the documentation that jaxdse computes: docs/figures/pipeline.png.

    python docs/make_figures.py            # needs matplotlib (pip install ".[data]")

One small data set (three Gaussian blobs in two dimensions, 120 points) through
DSE's pipeline: the Gaussian kernel matrix, the random-walk matrix, the
spectrum raised to the power t, and DSE against the diffusion time t.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's jaxdse

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxdse  # noqa: E402
from jaxdse.data import gaussian_blobs  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures" / "pipeline.png"
N, K, SIGMA = 120, 3, 2.0
TIMES = (1, 4, 16, 64)


def compute():
    x, y = gaussian_blobs(N, 2, K, spread=1.5, separation=20.0, seed=0)
    order = np.argsort(y, kind="stable")  # rows by blob, so the matrices show blocks
    x, y = x[order], y[order]
    g = np.asarray(jaxdse.gaussian_affinity(x, sigma=SIGMA))
    p = g / g.sum(axis=1, keepdims=True)  # the random walk P = D^-1 G
    eigenvalues = np.sort(np.abs(np.asarray(jaxdse.diffusion_eigenvalues(x, sigma=SIGMA))))[::-1]
    ts = np.geomspace(0.25, 4096, 60)
    entropy = np.asarray(jaxdse.dse(x, sigma=SIGMA, t=jnp.asarray(ts)))
    return x, y, g, p, eigenvalues, ts, entropy


def draw(out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, g, p, eigenvalues, ts, entropy = compute()
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.4), dpi=80)
    ax = axes[0]
    ax.scatter(x[:, 0], x[:, 1], c=y, s=10, cmap="viridis")
    ax.set_title(f"points x ({N} in 2-D, {K} blobs)")
    ax.set_aspect("equal", "datalim")
    ax = axes[1]
    im = ax.imshow(g, cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"kernel G = exp(-|xi-xj|² / 2σ²), σ = {SIGMA:g}")
    ax = axes[2]
    im = ax.imshow(p, cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("random walk P = D⁻¹ G")
    ax = axes[3]
    ranks = np.arange(1, N + 1)
    for t in TIMES:
        ax.semilogy(ranks, np.maximum(eigenvalues**t, 1e-12), label=f"t = {t}")
    ax.set_ylim(1e-6, 2)
    ax.set_xlim(0, 40)
    ax.set_xlabel("rank i")
    ax.set_title("spectrum |λi|^t")
    ax.legend(fontsize=8)
    ax = axes[4]
    ax.semilogx(ts, entropy, color="k")
    ax.axhline(np.log2(N), ls=":", color="gray")
    ax.axhline(np.log2(K), ls="--", color="gray")
    ax.text(ts[0], np.log2(N) - 0.6, f"log2 {N}", fontsize=8, color="gray")
    ax.text(ts[0], np.log2(K) + 0.15, f"log2 {K}", fontsize=8, color="gray")
    ax.set_xlabel("diffusion time t")
    ax.set_ylabel("bits")
    ax.set_title("DSE = H(|λ|^t / Σ|λ|^t)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    path = draw(args.out)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()

"""Agreement with the peers' own packages, on seeded data sets: writes ``results_peers.md``.

    python benchmarks/bench_peers.py      # needs pip install ".[peers]" (and dse-dsmi)

For each set of :func:`benchmarks.peers.parity_sets` (float64, jax's x64 mode):
manylatents' ``DiffusionSpectralEntropy`` at t = 1, 3, 10 and its
eigenvalue count (t_high = 500) against ``jaxdse.dse`` /
``jaxdse.eigenvalue_count`` with ``recipes.manylatents()``, and the same DSE in
float32; graphtools' alpha-decay kernel against ``AlphaDecayKernel``; PHATE's
von Neumann entropy curve and ``t="auto"`` against ``recipes.phate_vne`` and
``recipes.phate_t``; the Transformer-Dispersion call (``dse-dsmi`` on rows
divided by ``|x| + 1e-12``, sigma 1, t 1) against ``recipes.transformer_dispersion``.
A peer that is not installed is reported as such.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from benchmarks import peers  # noqa: E402
from benchmarks.provenance import stamp  # noqa: E402

OUT = Path(__file__).with_name("results_peers.md")


def _version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def manylatents_rows(sets):
    import jaxdse
    from jaxdse import recipes

    module, context = peers.manylatents_dse()
    rows = []
    for name, x in sets.items():
        with context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.array([module.DiffusionSpectralEntropy(x, t=t) for t in (1, 3, 10)])
            count = module.DiffusionSpectralEntropy(x, output_mode="eigenvalue_count", t_high=500)
        kw = recipes.manylatents()
        with jax.enable_x64(True):
            ours = np.asarray(jaxdse.dse(x, **{**kw, "t": jax.numpy.asarray([1.0, 3.0, 10.0])}))
            ours_count = int(jaxdse.eigenvalue_count(x, **{**kw, "t": 500}))
        ours32 = float(jaxdse.dse(x.astype(np.float32), **kw))
        rows.append(
            f"| {name} | {', '.join(f'{v:.6f}' for v in theirs)} | {np.max(np.abs(ours - theirs)):.1e} | "
            f"{abs(ours32 - theirs[1]):.1e} | {count} | {ours_count} |"
        )
    return [
        f"### manylatents {_version('manylatents')}: `DiffusionSpectralEntropy` (kNN kernel, k = 15, alpha 1)",
        "",
        "| set | manylatents DSE at t = 1, 3, 10 (bits) | max difference, x64 | difference at t = 3, float32 "
        "| eigenvalue count (t_high 500) | jaxdse count |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def graphtools_rows(sets):
    import graphtools

    from jaxdse import AlphaDecayKernel

    rows = []
    for name, x in sets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            K = graphtools.Graph(x, knn=5, decay=40, thresh=1e-4, n_pca=None, verbose=0).K.toarray()
        with jax.enable_x64(True):
            ours = np.asarray(AlphaDecayKernel(5, 40, 1e-4).affinity(x))
        rows.append(f"| {name} | {x.shape[0]} | {np.max(np.abs(ours - K)):.1e} |")
    return [
        f"### graphtools {_version('graphtools')}: the alpha-decay kernel (knn 5, decay 40, thresh 1e-4)",
        "",
        "| set | n | max difference of the kernel matrices (x64) |",
        "|---|---|---|",
        *rows,
        "",
    ]


def phate_rows(sets):
    import phate

    from jaxdse import recipes

    rows = []
    for name, x in sets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op = phate.PHATE(knn=5, decay=40, verbose=0, n_jobs=1).fit(x)
            _, theirs = op._von_neumann_entropy(t_max=100)
            t_theirs = phate.vne.find_knee_point(theirs, np.arange(100))
        with jax.enable_x64(True):
            ours = np.asarray(recipes.phate_vne(x))
            t_ours = recipes.phate_t(x)
        rows.append(f"| {name} | {np.max(np.abs(ours - theirs)):.1e} | {t_theirs} | {t_ours} |")
    return [
        f"### PHATE {_version('phate')}: von Neumann entropy curve (t_max 100, nats) and its knee",
        "",
        "| set | max difference of the curves | PHATE's t | `recipes.phate_t` |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def dispersion_rows(sets):
    import dse_dsmi

    import jaxdse
    from jaxdse import recipes

    rows = []
    for name, x in sets.items():
        unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
        theirs = dse_dsmi.diffusion_spectral_entropy(unit, gaussian_kernel_sigma=1, t=1)
        with jax.enable_x64(True):
            ours = float(jaxdse.dse(recipes.l2_normalize(x), **recipes.transformer_dispersion()))
        ours32 = float(jaxdse.dse(recipes.l2_normalize(x.astype(np.float32)), **recipes.transformer_dispersion()))
        rows.append(f"| {name} | {theirs:.6f} | {abs(ours - theirs):.1e} | {abs(ours32 - theirs):.1e} |")
    return [
        f"### Transformer-Dispersion's call (dse-dsmi {_version('dse-dsmi')} on unit rows, sigma 1, t 1)",
        "",
        "| set | their DSE (bits) | difference, x64 | difference, float32 |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def main():
    sets = dict(peers.parity_sets())
    lines = ["## Agreement with the peers' own packages", "", stamp(), ""]
    for what, fn in (
        ("manylatents", manylatents_rows),
        ("graphtools", graphtools_rows),
        ("phate", phate_rows),
        ("dse-dsmi", dispersion_rows),
    ):
        try:
            lines += fn(sets)
        except ImportError as err:
            lines += [f"### {what}", "", f"Not run: {err}.", ""]
        print(lines[-3] if len(lines) > 3 else "", flush=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""The peers' packages as the parity checks call them, and the seeded data sets they are compared on.

Shared by ``tests/kernels/test_peers.py`` (which skips where a peer is not
installed) and ``benchmarks/bench_peers.py`` (which writes the measured
differences to ``results_peers.md``). Install the peers with
``pip install ".[peers]"``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
import sys
import types

import numpy as np


def five_blobs():
    """manylatents' ``tests/test_dse_knn.py`` data: unequal cluster sizes, n = 500."""
    from sklearn import datasets

    return datasets.make_blobs(n_samples=[150, 50, 100, 80, 120], cluster_std=0.3, random_state=42)[0]


def swiss_roll(n=500):
    from sklearn import datasets

    return datasets.make_swiss_roll(n_samples=n, random_state=42)[0]


def parity_sets():
    """``(name, x [n, d] float64)``: blobs, a swiss roll, Gaussian points, every row twice."""
    yield "blobs", five_blobs()
    yield "swiss roll", swiss_roll(400)
    yield "gaussian", np.random.default_rng(1).normal(size=(300, 8))
    base = np.random.default_rng(2).normal(size=(150, 3))
    yield "duplicates", np.concatenate([base, base])


@contextlib.contextmanager
def _modules(stubs):
    """Put the given modules into ``sys.modules`` for the block, where absent, and take them out after."""
    added = [name for name in stubs if name not in sys.modules]
    for name in added:
        sys.modules[name] = stubs[name]
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def manylatents_dse():
    """``(module, context)``: manylatents' DSE metric module and a context to call it in.

    manylatents' package imports torch and its full stack at import time; the DSE
    metric itself needs numpy, scipy and scikit-learn only (torch for a type check).
    Without that stack, its own source file is loaded with the metric registry
    and torch's ``Tensor`` stood in for, only while loading and calling.

    Raises:
      ImportError: manylatents (or omegaconf, which it imports) is not installed.
    """
    import manylatents
    import omegaconf  # noqa: F401  (manylatents' metric file imports it)

    try:
        from manylatents.metrics import diffusion_spectral_entropy as module

        return module, contextlib.nullcontext
    except ImportError:
        pass
    root = pathlib.Path(manylatents.__file__).parent
    registry = types.ModuleType("manylatents.metrics.registry")
    registry.register_metric = lambda *args, **kwargs: lambda f: f
    metrics = types.ModuleType("manylatents.metrics")
    metrics.__path__ = [str(root / "metrics")]
    with _modules({"manylatents.metrics": metrics, "manylatents.metrics.registry": registry}):
        spec = importlib.util.spec_from_file_location(
            "_manylatents_dse", root / "metrics" / "diffusion_spectral_entropy.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    torch = types.ModuleType("torch")
    torch.Tensor = type("Tensor", (), {})
    return module, lambda: _modules({"torch": torch})

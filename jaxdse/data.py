"""Data that ships: the scikit-learn 8x8 digits, and small synthetic generators.

Nothing here downloads anything.
"""

from __future__ import annotations

import numpy as np


def load_digits(*, dtype=np.float32):
    """The 1797 8x8 handwritten digits shipped with scikit-learn.

    Returns ``(x, y)``: pixels ``[1797, 64]`` with values 0..16 and integer
    labels ``[1797]`` in 0..9. Needs scikit-learn (``pip install jaxdse[data]``).
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data ships with scikit-learn: pip install 'jaxdse[data]' (or scikit-learn)"
        ) from err
    bunch = _load()
    return bunch.data.astype(dtype), bunch.target.astype(np.int32)


def gaussian_blobs(n: int, d: int, k: int, *, spread: float = 1.0, separation: float = 10.0, seed: int = 0):
    """``k`` isotropic Gaussian blobs in ``d`` dimensions.

    Returns ``(x [n, d] float32, labels [n] int32)``. Centres have per-coordinate
    std ``separation / sqrt(d)`` and points ``spread / sqrt(d)`` around them, so
    distances between centres are about ``separation * sqrt(2)`` and within a
    blob about ``spread * sqrt(2)``, whatever ``d``. Labels are balanced.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=separation / np.sqrt(d), size=(k, d))
    labels = np.arange(n) % k
    rng.shuffle(labels)
    x = centres[labels] + rng.normal(scale=spread / np.sqrt(d), size=(n, d))
    return x.astype(np.float32), labels.astype(np.int32)

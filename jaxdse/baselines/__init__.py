"""Estimators the paper compares DSE/DSMI against, on the same array conventions.

* :func:`cse`: classic Shannon entropy of binned points (bits by default).
* :func:`matrix_entry_entropy`, :func:`adjacency_spectral_entropy`: the
  reference package's alternative spectra, kept for parity.
* :func:`mine`: MINE, a neural Donsker-Varadhan estimator (Flax + optax).
* :func:`ksg`: the Kraskov-Stoegbauer-Grassberger k-nearest-neighbour estimator.

Definitions: SPEC section 3. Every function states its unit; all return bits
unless given another ``base``.
"""

from jaxdse.baselines.cse import cse
from jaxdse.baselines.ksg import ksg
from jaxdse.baselines.mine import MineHistory, MineResult, mine
from jaxdse.baselines.variants import adjacency_spectral_entropy, matrix_entry_entropy

__all__ = [
    "MineHistory",
    "MineResult",
    "adjacency_spectral_entropy",
    "cse",
    "ksg",
    "matrix_entry_entropy",
    "mine",
]

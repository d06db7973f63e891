"""Estimators the paper compares DSE/DSMI against, on the same array conventions.

* :func:`cse`, :func:`csmi`: classic Shannon entropy of binned points and its
  mutual information (built exactly like DSMI).
* :func:`matrix_entry_entropy`, :func:`adjacency_spectral_entropy` and their
  mutual informations: the reference package's alternative spectra, kept for
  parity.
* :func:`mine`: MINE, a neural Donsker-Varadhan estimator (Flax + optax).
* :func:`ksg`: the Kraskov-Stoegbauer-Grassberger k-nearest-neighbour estimator.

Every function states its formula and unit; all return bits unless given
another ``base``.

Imports from jaxdse: :mod:`jaxdse._checks` up to :mod:`jaxdse.mi` (the mutual
informations use DSMI's engine).
"""

from jaxdse.baselines.binned import cse
from jaxdse.baselines.kraskov import ksg
from jaxdse.baselines.mi import adjacency_spectral_mutual_information, csmi, matrix_entry_mutual_information
from jaxdse.baselines.neural import MineHistory, MineResult, mine
from jaxdse.baselines.variants import adjacency_spectral_entropy, matrix_entry_entropy

__all__ = [
    "MineHistory",
    "MineResult",
    "adjacency_spectral_entropy",
    "adjacency_spectral_mutual_information",
    "cse",
    "csmi",
    "ksg",
    "matrix_entry_entropy",
    "matrix_entry_mutual_information",
    "mine",
]

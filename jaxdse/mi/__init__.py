"""Mutual information: labels, the DSMI engine and the public DSMI estimates.

:mod:`~jaxdse.mi.labels` reads a reference as class labels
(:mod:`~jaxdse.mi.clustering` clusters a continuous one); :mod:`~jaxdse.mi.engine`
turns any masked subset entropy into a mutual information;
:mod:`~jaxdse.mi.estimators` holds the public :func:`dsmi` and :func:`dsmi_terms`.
:mod:`jaxdse.mi.sweep` evaluates DSE and DSMI over a grid of sigma and t.

Imports from jaxdse: :mod:`jaxdse._checks`, :mod:`jaxdse.kernels`, :mod:`jaxdse.solvers`
and :mod:`jaxdse.entropy`.
"""

from jaxdse.mi.clustering import cluster_reference
from jaxdse.mi.engine import MIOptions, MutualInformation, SubsetEntropy, mutual_information
from jaxdse.mi.estimators import dsmi, dsmi_terms

__all__ = [
    "MIOptions",
    "MutualInformation",
    "SubsetEntropy",
    "cluster_reference",
    "dsmi",
    "dsmi_terms",
    "mutual_information",
]

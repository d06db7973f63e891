"""Peer measures of a representation, beside DSE and DSMI.

Imports from jaxdse: :mod:`jaxdse._checks`, :mod:`jaxdse.kernels`, :mod:`jaxdse.solvers`
and :mod:`jaxdse.entropy`.
"""

from jaxdse.metrics.dimension import (
    alpha_req,
    participation_ratio,
    rankme,
    renyi_entropy,
    renyi_mutual_information,
    renyi_of_spectrum,
)

__all__ = ["alpha_req", "participation_ratio", "rankme", "renyi_entropy", "renyi_mutual_information"]

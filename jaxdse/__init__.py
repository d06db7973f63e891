"""jaxdse: diffusion spectral entropy and mutual information in JAX.

The data path reads in one direction, one module per step:
points (:mod:`jaxdse.affinity`) -> diffusion operator and spectrum
(:mod:`jaxdse.diffusion`) -> entropy (:mod:`jaxdse.entropy`) -> DSE
(:mod:`jaxdse.dse`).
"""

from jaxdse import data
from jaxdse.affinity import gaussian_affinity, pairwise_sq_distances
from jaxdse.diffusion import (
    diffusion_eigenvalues,
    get_memory_budget,
    set_memory_budget,
    symmetric_diffusion_operator,
)
from jaxdse.dse import dse
from jaxdse.dsmi import MutualInformation, cluster_reference, dsmi, dsmi_terms, mutual_information
from jaxdse.entropy import spectral_entropy
from jaxdse.sharding import sharded_vmap
from jaxdse.slq import SLQResult, dse_slq

__version__ = "0.1.0"

__all__ = [
    "diffusion_eigenvalues",
    "dse",
    "dsmi",
    "dsmi_terms",
    "cluster_reference",
    "mutual_information",
    "MutualInformation",
    "gaussian_affinity",
    "get_memory_budget",
    "pairwise_sq_distances",
    "set_memory_budget",
    "spectral_entropy",
    "symmetric_diffusion_operator",
    "dse_slq",
    "SLQResult",
    "sharded_vmap",
]

"""jaxdse: diffusion spectral entropy and mutual information in JAX.

The data path reads in one direction, one module per step:
points -> affinities (:mod:`jaxdse.affinity`) -> diffusion operator and its
spectrum (:mod:`jaxdse.diffusion`; matrix-free: :mod:`jaxdse.operators`,
:mod:`jaxdse.slq`) -> entropy (:mod:`jaxdse.entropy`) -> mutual information
(:mod:`jaxdse.labels`, :mod:`jaxdse.engine`). :mod:`jaxdse.solvers` says how a
spectrum is computed; :mod:`jaxdse.estimators` holds the public estimates.
"""

from importlib import metadata as _metadata

from jaxdse import data, metrics, probes
from jaxdse.affinity import gaussian_affinity, pairwise_sq_distances
from jaxdse.clustering import cluster_reference
from jaxdse.diffusion import symmetric_diffusion_operator
from jaxdse.engine import MIOptions, MutualInformation, mutual_information
from jaxdse.entropy import spectral_entropy
from jaxdse.estimators import choose_t, diffusion_eigenvalues, dse, dse_estimate, dsmi, dsmi_terms
from jaxdse.memory import get_memory_budget, set_memory_budget
from jaxdse.metrics import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information
from jaxdse.nystrom import LowRankWarning, Nystrom
from jaxdse.probes import RepresentationMetrics, knn_accuracy, make_representation_evaluator, ridge_accuracy
from jaxdse.sharding import sharded_vmap
from jaxdse.streaming import stream_dse, stream_dsmi
from jaxdse.solvers import SLQ, Estimate, Exact

try:
    __version__ = _metadata.version("jaxdse")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.2.0"

__all__ = [
    "Exact",
    "SLQ",
    "Nystrom",
    "LowRankWarning",
    "Estimate",
    "dse",
    "dse_estimate",
    "stream_dse",
    "stream_dsmi",
    "choose_t",
    "diffusion_eigenvalues",
    "spectral_entropy",
    "dsmi",
    "dsmi_terms",
    "mutual_information",
    "MutualInformation",
    "MIOptions",
    "cluster_reference",
    "gaussian_affinity",
    "pairwise_sq_distances",
    "symmetric_diffusion_operator",
    "get_memory_budget",
    "set_memory_budget",
    "sharded_vmap",
    "rankme",
    "participation_ratio",
    "alpha_req",
    "renyi_entropy",
    "renyi_mutual_information",
    "knn_accuracy",
    "ridge_accuracy",
    "make_representation_evaluator",
    "RepresentationMetrics",
    "data",
]

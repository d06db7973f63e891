"""jaxdse: diffusion spectral entropy and mutual information in JAX.

The data path reads in one direction, one subpackage per stage: points ->
affinities (:mod:`jaxdse.kernels`) -> diffusion operator and its spectrum, exact
or matrix-free (:mod:`jaxdse.solvers`) -> entropy and the public DSE estimates
(:mod:`jaxdse.entropy`) -> mutual information (:mod:`jaxdse.mi`). Around them:
peer measures (:mod:`jaxdse.metrics`), the paper's baselines
(:mod:`jaxdse.baselines`), probes and one evaluator of every measure
(:mod:`jaxdse.monitor`), files and figures (:mod:`jaxdse.io`) and the command
line (:mod:`jaxdse.cli`). Every input check is in :mod:`jaxdse._checks`, which
imports nothing from jaxdse. The old flat module paths (``jaxdse.affinity``, ...)
still import, with a DeprecationWarning (:mod:`jaxdse._moved`).
"""

from jaxdse import _moved, data, metrics, recipes  # noqa: F401  (attributes of the package)
from jaxdse._version import __version__ as __version__
from jaxdse.entropy import choose_t, diffusion_eigenvalues, dse, dse_estimate, spectral_entropy
from jaxdse.kernels import AlphaDecayKernel, KNNKernel, gaussian_affinity, pairwise_sq_distances
from jaxdse.layers import LayerAccumulator, LayerProfile, layerwise
from jaxdse.layers.streaming import stream_dse, stream_dsmi
from jaxdse.metrics import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information
from jaxdse.mi import MIOptions, MutualInformation, cluster_reference, dsmi, dsmi_terms, mutual_information
from jaxdse.monitor import RepresentationMetrics, knn_accuracy, make_representation_evaluator, ridge_accuracy
from jaxdse.recipes import eigenvalue_count
from jaxdse.solvers import (
    SLQ,
    Estimate,
    Exact,
    LowRankWarning,
    Nystrom,
    get_memory_budget,
    set_memory_budget,
    sharded_vmap,
    symmetric_diffusion_operator,
)

_moved.install()

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
    "KNNKernel",
    "AlphaDecayKernel",
    "eigenvalue_count",
    "recipes",
    "layerwise",
    "LayerProfile",
    "LayerAccumulator",
]


# Subpackages that ``import jaxdse`` does not load (file readers and plots, the
# baselines with their neural estimator, the model zoo, the command line) are
# still attributes: the first access imports them.
_LAZY = ("baselines", "cli", "io", "zoo")


def __getattr__(name):
    """The lazy subpackages, and the old module paths (``jaxdse.affinity``, ...) with a DeprecationWarning."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if f"{__name__}.{name}" in _moved.MOVED:
        return _moved.load(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

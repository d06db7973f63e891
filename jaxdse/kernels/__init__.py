"""Kernels: points, or a precomputed matrix, -> affinities; the bandwidth rules.

:mod:`~jaxdse.kernels.points` standardises points and builds their Gaussian
affinities with a fixed bandwidth or a rule (median, sqrt_dim, knn);
:mod:`~jaxdse.kernels.precomputed` takes a distance or affinity matrix instead;
:mod:`~jaxdse.kernels.peers` holds other tools' kernels as values (manylatents'
kNN kernel, graphtools' alpha-decay kernel), dense.

Imports from jaxdse: :mod:`jaxdse._checks` only.
"""

from jaxdse.kernels.peers import AlphaDecayKernel, KNNKernel
from jaxdse.kernels.points import gaussian_affinity, pairwise_sq_distances, resolved_sigma

__all__ = ["AlphaDecayKernel", "KNNKernel", "gaussian_affinity", "pairwise_sq_distances", "resolved_sigma"]

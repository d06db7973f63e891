"""Mutual informations of the baseline entropies, built exactly like DSMI.

Each entropy is a :class:`jaxdse.mi.SubsetEntropy` handed to
:func:`jaxdse.mutual_information`, so the reference handling
(labels, binning, clustering), the estimators (``"subsample"``, ``"plugin"``)
and the padding to a static class size are DSMI's own. Kernel-based entropies
prepare the points once (bandwidth rule resolved on the whole set).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.baselines.binned import masked_cse
from jaxdse.baselines.variants import (
    KINDS,
    masked_adjacency_spectral_entropy,
    masked_knn_adjacency_entropy,
    masked_matrix_entry_entropy,
)
from jaxdse.kernels.points import prepare_points
from jaxdse.mi.engine import mutual_information
from jaxdse.solvers.memory import dense_bytes
from jaxdse.solvers.objects import Estimate


class _Exact:
    """An entropy without a standard error, over dense ``m x m`` work."""

    def subset_bytes(self, m: int, dtype) -> int:
        return dense_bytes(m, dtype, 5)

    def __call__(self, rows, mask, params, key) -> Estimate:
        value = self.masked(rows, mask, params)
        return Estimate(value, jnp.zeros_like(value))


@dataclasses.dataclass(frozen=True)
class ClassicEntropy(_Exact):
    """Masked CSE; static: bins per feature; ``params = base``."""

    num_bins: int

    def prepare(self, z, params):
        return z

    def masked(self, points, mask, base):
        return masked_cse(points, mask, num_bins=self.num_bins, base=base)


@dataclasses.dataclass(frozen=True)
class MatrixEntryEntropy(_Exact):
    """Masked matrix-entry entropy; static: bandwidth rule (and k); ``params = (sigma, base)``."""

    rule: str
    k: int | None = None

    def prepare(self, z, params):
        return prepare_points(z, Bandwidth(self.rule, params[0], self.k))

    def masked(self, points, mask, params):
        return masked_matrix_entry_entropy(points, mask, base=params[1])


@dataclasses.dataclass(frozen=True)
class AdjacencyEntropy(_Exact):
    """Masked adjacency spectral entropy; static: kind, knn, bandwidth rule; ``params = (sigma, base)``."""

    kind: str
    knn: int
    rule: str
    k: int | None = None

    def prepare(self, z, params):
        if self.kind == "knn":
            return z
        return prepare_points(z, Bandwidth(self.rule, params[0], self.k))

    def masked(self, rows, mask, params):
        if self.kind == "knn":
            return masked_knn_adjacency_entropy(rows, mask, knn=self.knn, base=params[1])
        return masked_adjacency_spectral_entropy(rows, mask, kind=self.kind, base=params[1])


def csmi(z, y, *, key=None, num_bins_per_dim: int = 2, base=2.0, **options):
    """Classic Shannon mutual information ``CSMI(Z; Y)``: DSMI with CSE in place of DSE.

    ``CSMI = sum_c p(c) [mean_r CSE(Z*_{c,r}) - CSE(Z | Y = c)]`` (``"subsample"``,
    default) or ``CSE(Z) - sum_c p(c) CSE(Z | Y = c)`` (``"plugin"``), in units of
    ``base`` (bits by default). In high dimension every binned row is unique, all
    terms equal ``log_b n_c`` and CSMI collapses to 0. In low dimension it can be
    negative: each subset is min-max scaled to its own range, so a tight class
    fills all bins while a random subset spanning several classes leaves most
    cells empty (the reference gives the same values).

    Args:
      z: ``[n, d]`` representation.
      y: reference for the same samples, read as by :func:`jaxdse.dsmi`.
      key: ``jax.random`` key or integer seed (required for ``"subsample"``).
      num_bins_per_dim: bins per feature for CSE (static).
      base: logarithm base.
      **options: the estimator's settings, :class:`jaxdse.MIOptions`.

    The ``"subsample"`` value is random: it agrees with the reference package
    (``classic_shannon_entropy=True``) in expectation. Deterministic for a given
    ``key``; under ``jit`` the labels may be traced when ``num_classes`` and
    ``max_class_size`` (static) are given, as for DSMI.

    Returns a scalar estimate; raises TypeError/ValueError naming the argument
    for bad input.

    >>> import numpy as np
    >>> z = np.repeat(np.eye(2), 20, axis=0)  # two classes, two distinct rows
    >>> float(csmi(z, np.repeat([0, 1], 20), estimator="plugin"))
    1.0
    """
    num_bins = _checks.check_int(num_bins_per_dim, "num_bins_per_dim")
    base = _checks.check_base(base)
    return mutual_information(z, y, entropy=ClassicEntropy(num_bins), params=base, key=key, **options).value


def matrix_entry_mutual_information(z, y, *, key=None, sigma=10.0, base=2.0, **options):
    """Mutual information built like DSMI from :func:`matrix_entry_entropy`.

    ``sum_c p(c) [mean_r H(Z*_{c,r}) - H(Z | Y = c)]`` (``"subsample"``) or
    ``H(Z) - sum_c p(c) H(Z | Y = c)`` (``"plugin"``), with ``H`` the entropy of
    the diffusion matrix's entries; units of ``base`` (bits by default). The
    reference's ``diffusion_spectral_mutual_information(..., matrix_entry_entropy=True)``.

    The estimator is DSMI's (:func:`jaxdse.mutual_information`): ``key`` (a key or
    an integer seed) is required for ``"subsample"``, ``options`` are the fields
    of :class:`jaxdse.MIOptions`, ``y`` is read as by :func:`jaxdse.dsmi`, and a
    bandwidth rule is resolved once on all of ``z``. The ``"subsample"`` value is random and agrees with
    the reference in expectation.
    Deterministic for a given ``key``; under ``jit`` the labels may be traced
    when ``num_classes`` and ``max_class_size`` (static) are given, as for DSMI.

    Returns a scalar; raises TypeError/ValueError naming the argument for bad input.

    >>> import numpy as np
    >>> z = np.repeat(np.eye(2), 10, axis=0) * 100.0
    >>> round(float(matrix_entry_mutual_information(z, np.repeat([0, 1], 10), estimator="plugin")), 4)
    1.0
    """
    z, bandwidth, _ = _checks.check_points_and_bandwidth(z, sigma, None, name="z")
    base = _checks.check_base(base)
    params = (bandwidth.number, base)
    entropy = MatrixEntryEntropy(bandwidth.rule, bandwidth.k)
    return mutual_information(z, y, entropy=entropy, params=params, key=key, **options).value


def adjacency_spectral_mutual_information(
    z, y, *, key=None, kind: str = "gaussian", knn: int = 10, sigma=10.0, base=2.0, **options
):
    """Mutual information built like DSMI from :func:`adjacency_spectral_entropy`.

    ``sum_c p(c) [mean_r H(Z*_{c,r}) - H(Z | Y = c)]`` (``"subsample"``) or
    ``H(Z) - sum_c p(c) H(Z | Y = c)`` (``"plugin"``), with ``H`` the adjacency
    spectral entropy of ``kind``; units of ``base`` (bits by default). The
    reference's ``adjacency_spectral_mutual_information``.

    The estimator is DSMI's (:func:`jaxdse.mutual_information`): ``key`` (a key or
    an integer seed) is required for ``"subsample"``, ``options`` are the fields
    of :class:`jaxdse.MIOptions`, ``y`` is read as by :func:`jaxdse.dsmi`, and a
    bandwidth rule is resolved once on all of ``z``. The ``"subsample"`` value is random and agrees with
    the reference in expectation. With ``kind="knn"`` every class (and padded
    subset) must hold at least ``knn`` points.
    Deterministic for a given ``key``; under ``jit`` the labels may be traced
    when ``num_classes`` and ``max_class_size`` (static) are given, as for DSMI.

    Returns a scalar; raises TypeError/ValueError naming the argument for bad input.

    >>> import numpy as np
    >>> z = np.repeat(np.eye(2), 10, axis=0) * 100.0
    >>> y = np.repeat([0, 1], 10)
    >>> round(float(adjacency_spectral_mutual_information(z, y, estimator="plugin")), 4)
    1.0
    """
    _checks.check_choice(kind, "kind", KINDS)
    knn = _checks.check_int(knn, "knn")
    z, bandwidth, _ = _checks.check_points_and_bandwidth(z, sigma, None, name="z")
    base = _checks.check_base(base)
    params = (bandwidth.number, base)
    entropy = AdjacencyEntropy(kind, knn, bandwidth.rule, bandwidth.k)
    return mutual_information(z, y, entropy=entropy, params=params, key=key, **options).value

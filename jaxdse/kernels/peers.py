"""Affinity kernels of other diffusion-geometry packages, as values.

A kernel object turns points ``x`` ``[n, d]`` into a dense affinity matrix
``G`` ``[n, n]``; :func:`jaxdse.dse`, :func:`jaxdse.dsmi`,
:func:`jaxdse.choose_t`, :func:`jaxdse.diffusion_eigenvalues` and
:func:`jaxdse.eigenvalue_count` take one as ``kernel=`` (in place of
``sigma``, which must then be left out). The matrix then goes down the same
path as ``precomputed="affinity"``: anisotropy ``alpha``, the symmetric
diffusion operator, its spectrum. For DSMI the kernel is built once on the
whole set and every subset takes its block.

* :class:`KNNKernel` -- manylatents' kNN kernel (``k = 15``, adaptive
  bandwidths, union of neighbourhoods).
* :class:`AlphaDecayKernel` -- graphtools' alpha-decay kernel, the one PHATE
  uses (``knn = 5``, ``decay = 40``, threshold ``1e-4``, ``(K + K^T) / 2``).

Both are frozen dataclasses registered as *static* pytrees: they hash by value,
can be closed over or passed through ``jax.jit`` as static data, and their
:meth:`affinity` method is jittable.

Dense. The matrix is ``[n, n]`` in memory (a kNN kernel is sparse, but the
exact spectrum needs the dense operator anyway): memory grows as ``n^2``.

Gradients. Neighbour sets are piecewise constant in ``x``: the gradient is that
of the kernel with the neighbour sets (and, for the threshold, the set of kept
entries) held fixed. The adaptive bandwidths themselves (the distance to the
k-th neighbour) are differentiated, with that neighbour held fixed.

Ties. Among equally distant candidates for the k-th place, the lower row index
wins (``jax.lax.top_k``'s order); scikit-learn's trees may pick another, so
data with exact ties at the k-th neighbour (not duplicates alone) can differ
from the peers.

Precision. Distances are computed in the input's dtype (float32 unless x64 is
on). The peers work in float64 (manylatents' neighbour search in float32);
for agreement to 1e-6 bits use ``jax.enable_x64``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.kernels.points import kth_neighbour_sq, self_sq_distances, standardise

# Exponents beyond this give exp(-x) == 0 in float32 and float64 alike.
_EXP_CUTOFF = 800.0


class PeerKernel:
    """Base of the kernel objects: ``affinity(x, mask=None)`` -> ``G`` ``[n, n]``."""

    #: the name of the field that holds the neighbour count (set by each kernel)
    _neighbour_field: str

    @property
    def neighbours(self) -> int:
        """The neighbour count that sets the adaptive bandwidth."""
        return getattr(self, self._neighbour_field)

    def affinity(self, x, mask=None):
        """Dense affinity matrix ``G`` ``[n, n]`` of the rows of ``x`` ``[n, d]``.

        Rows and columns that ``mask`` ``[n]`` drops are 0 and take no part in
        the neighbour search (``G`` equals the kernel of ``x[mask]`` on the kept
        block). Jittable; see the module docstring for the gradient.
        """
        return self._dense(x, mask)

    def _dense(self, x, mask, name="x"):
        """Validate ``x`` and ``mask`` (and the neighbour count against the kept rows), then build the matrix."""
        x = _checks.as_array(x, name)
        mask = _checks.check_mask(mask, np.shape(x)[0] if np.ndim(x) else 0)
        x = _checks.as_points(x, name, mask=mask)
        n = x.shape[0]
        kept = n if mask is None or not _checks.is_concrete(mask) else _checks.count_true(mask)
        field = self._neighbour_field
        if self.neighbours > kept - 1:
            raise ValueError(
                f"{field}={self.neighbours}: {type(self).__name__} needs {field} <= n - 1 = {kept - 1} "
                f"neighbours among the {kept} points"
            )
        keep = jnp.ones(n, bool) if mask is None else mask
        return _matrix(self, x, keep)


@partial(jax.jit, static_argnames=("kernel",))
def _matrix(kernel, x, keep):
    # Both kernels depend on distances only through ratios: standardising
    # (centring, a power-of-two scale) changes nothing but the range.
    y, _ = standardise(x, keep)
    d2 = self_sq_distances(y)
    excluded = jnp.eye(x.shape[0], dtype=bool) | ~keep[None, :]
    return kernel._from_sq_distances(d2, keep, excluded)


def _sqrt0(v):
    """``sqrt(v)`` with a finite gradient at 0 (where the value is 0)."""
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def _check_neighbours(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class KNNKernel(PeerKernel):
    """manylatents' kNN kernel (``manylatents/metrics/diffusion_spectral_entropy.py``,
    ``compute_diffusion_matrix_knn``, manylatents 0.1.8).

    With ``N_i`` the ``k`` nearest neighbours of ``x_i`` other than itself and
    ``s_i`` the distance to the k-th of them (Zelnik-Manor and Perona's
    adaptive bandwidth)::

        W_ij = exp(-|x_i - x_j|^2 / (s_i s_j))
        G_ij = W_ij  if j in N_i or i in N_j   (the maximum of the two one-sided kernels)
        G_ii = 1,    G_ij = 0 otherwise.

    There is no factor 2 in the exponent and no epsilon is added. A point with
    ``k`` duplicates has ``s_i = 0``: it then has affinity 1 to its duplicates
    and 0 to every other point (manylatents' floor of ``1e-10`` gives the same
    for any non-coincident points).

    With ``alpha=1.0`` and ``t=3`` (:func:`jaxdse.recipes.manylatents`),
    :func:`jaxdse.dse` equals manylatents' ``DiffusionSpectralEntropy`` (bits)
    and :func:`jaxdse.eigenvalue_count` its ``output_mode="eigenvalue_count"``.

    Args:
      k: neighbours per point, not counting the point itself (``1 <= k <= n - 1``).

    Raises:
      TypeError/ValueError naming ``k`` for a non-integer or ``k < 1`` (here),
      or ``k > n - 1`` (when the kernel meets its points).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(40, 2))
    >>> G = KNNKernel(k=5).affinity(x)
    >>> G.shape, bool((G == G.T).all()), float(G[0, 0])
    ((40, 40), True, 1.0)
    """

    k: int = 15

    def __post_init__(self):
        object.__setattr__(self, "k", _check_neighbours(self.k, "k"))

    _neighbour_field = "k"

    def _from_sq_distances(self, d2, keep, excluded):
        n, k = d2.shape[0], self.k
        neg = jnp.where(excluded, -jnp.inf, -d2)
        _, idx = jax.lax.top_k(jax.lax.stop_gradient(neg), k)
        kth = jnp.take_along_axis(d2, idx[:, k - 1 : k], axis=1)[:, 0]
        # Fewer than k + 1 kept rows (a traced mask): no k-th neighbour, NaN.
        enough = jnp.isfinite(jnp.take_along_axis(neg, idx[:, k - 1 : k], axis=1)[:, 0])
        s = jnp.where(enough, _sqrt0(kth), jnp.nan)
        rows = jnp.broadcast_to(jnp.arange(n)[:, None], idx.shape)
        member = jnp.zeros((n, n), bool).at[rows, idx].set(True) & keep[:, None]
        s2 = s[:, None] * s[None, :]
        positive = s2 > 0
        exponent = -d2 / jnp.where(positive, s2, 1.0)
        exponent = jnp.where(positive, exponent, jnp.where(d2 > 0, -jnp.inf, 0.0))
        W = jnp.exp(exponent)
        G = jnp.where(member | member.T, W, 0.0)
        G = jnp.where(jnp.eye(n, dtype=bool), 1.0, G)
        return jnp.where(keep[:, None] & keep[None, :], G, 0.0)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class AlphaDecayKernel(PeerKernel):
    """graphtools' alpha-decay kernel (``graphtools/graphs.py``, ``kNNGraph``,
    graphtools 2.1.0), the kernel of PHATE 2.0.0.

    With ``e_i`` the distance from ``x_i`` to its ``knn``-th nearest neighbour
    other than itself (graphtools searches ``knn + 1`` neighbours, the point
    itself first)::

        A_ij = exp(-(|x_i - x_j| / e_i)^decay),  set to 0 where A_ij < thresh
        G    = (A + A^T) / 2                      (graphtools' kernel_symm="+")

    over all pairs (graphtools widens its neighbour search until every entry
    at or above ``thresh`` is found, so this is the same matrix). ``G_ii = 1``.
    A point with ``knn`` duplicates has ``e_i = 0``: affinity 1 to its
    duplicates, 0 to the rest (as graphtools). ``thresh`` below float64's
    epsilon is raised to it, as graphtools does; ``thresh=0`` keeps every entry
    (graphtools' exact graph).

    Args:
      knn: neighbours setting the bandwidth (``1 <= knn <= n - 1``; graphtools
        lowers a ``knn > n - 2`` to ``n - 2`` with a warning).
      decay: the exponent (> 0); graphtools' ``decay=None`` (a binary kNN
        graph) is not this kernel.
      thresh: entries below it are 0, in [0, 1).

    Raises:
      TypeError/ValueError naming ``knn``, ``decay`` or ``thresh``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(40, 2))
    >>> G = AlphaDecayKernel(knn=5, decay=40).affinity(x)
    >>> G.shape, float(G[0, 0])
    ((40, 40), 1.0)
    """

    knn: int = 5
    decay: float = 40.0
    thresh: float = 1e-4

    def __post_init__(self):
        object.__setattr__(self, "knn", _check_neighbours(self.knn, "knn"))
        for name in ("decay", "thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {value!r}")
        if not (math.isfinite(self.decay) and self.decay > 0):
            raise ValueError(f"decay must be positive and finite, got {self.decay!r}")
        if not (0 <= self.thresh < 1):
            raise ValueError(f"thresh must lie in [0, 1), got {self.thresh!r}")
        object.__setattr__(self, "decay", float(self.decay))
        thresh = float(self.thresh)
        object.__setattr__(self, "thresh", max(thresh, float(np.finfo(float).eps)) if thresh > 0 else 0.0)

    _neighbour_field = "knn"

    def _from_sq_distances(self, d2, keep, excluded):
        n = d2.shape[0]
        eps2 = kth_neighbour_sq(d2, self.knn, excluded)  # inf when fewer than knn + 1 rows are kept
        eps2 = jnp.where(jnp.isfinite(eps2), eps2, jnp.nan)
        positive = eps2[:, None] > 0
        ratio = d2 / jnp.where(positive, eps2[:, None], 1.0)  # (d / e)^2
        half = self.decay / 2.0
        cutoff = _EXP_CUTOFF ** (1.0 / half)  # ratio above which A_ij == 0 in any precision
        inside = ratio <= cutoff
        safe = jnp.where(inside & (ratio > 0), ratio, 1.0)
        power = jnp.where(ratio > 0, safe**half, 0.0)
        A = jnp.where(inside, jnp.exp(-power), 0.0)
        A = jnp.where(positive, A, jnp.where(d2 > 0, 0.0, 1.0))
        A = jnp.where(jnp.isnan(eps2)[:, None], jnp.nan, A)
        if self.thresh > 0:
            A = jnp.where(A >= self.thresh, A, 0.0)
        A = jnp.where(jnp.eye(n, dtype=bool), 1.0, A)
        G = (A + A.T) / 2.0
        return jnp.where(keep[:, None] & keep[None, :], G, 0.0)


KERNELS = (KNNKernel, AlphaDecayKernel)


def _is_default_sigma(sigma) -> bool:
    if isinstance(sigma, (str, tuple, list, Bandwidth)) or sigma is None:
        return False
    if not _checks.is_concrete(sigma):
        return False
    return jnp.ndim(sigma) == 0 and float(sigma) == 10.0


def kernel_affinity(kernel, x, *, sigma=10.0, precomputed=None, mask=None, max_n=None, name="x"):
    """The affinity matrix ``[n, n]`` a ``kernel=`` argument stands for, after the checks.

    Raises TypeError for an object that is not a kernel, and ValueError naming
    ``sigma`` (a bandwidth the kernel does not use), ``precomputed`` or
    ``max_n`` when they are combined with ``kernel``.
    """
    if not isinstance(kernel, KERNELS):
        raise TypeError(f"kernel must be jaxdse.KNNKernel(...) or jaxdse.AlphaDecayKernel(...), got {kernel!r}")
    if not _is_default_sigma(sigma):
        raise ValueError(
            f"sigma={sigma!r} has nothing to act on: kernel={kernel!r} sets its own bandwidths (leave sigma out)"
        )
    if precomputed is not None:
        raise ValueError(f"precomputed={precomputed!r} does not combine with kernel=: the kernel is built from points")
    if max_n is not None:
        raise ValueError("max_n does not combine with kernel=: subsample the points first")
    return kernel.affinity(x, mask)

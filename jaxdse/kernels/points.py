"""Points -> Gaussian affinities, and the bandwidth rules.

``G_ij = exp(-||x_i - x_j||^2 / (2 s_i s_j))`` with one bandwidth per point. For
a fixed ``sigma`` every ``s_i = sigma``, which is the usual
``exp(-||x_i - x_j||^2 / (2 sigma^2))``. The reference implementation's constant
factor ``1 / (sigma sqrt(2 pi))`` cancels in the diffusion operator and is left
out.

Bandwidth ``sigma`` is either a positive number (may be traced, so sweeps over it
compile once) or a rule, resolved once on the whole point set (the kept rows of
a mask) and then kept by every subset of it (DSMI's class and comparison subsets
use the kernel of the whole set):

* ``"median"``: ``sigma^2 = median_{i < j} ||x_i - x_j||^2 / 2`` (the median
  heuristic; an error, or NaN under ``jit``, when that median is 0);
* ``"sqrt_dim"``: ``sigma = sqrt(d)`` (the paper's blob and ImageNet studies);
* ``"knn"`` or ``"knn:K"`` (or ``("knn", K)``): adaptive, ``s_i`` is the distance
  from ``x_i`` to its K-th nearest neighbour (default K = 7), as in
  diffusion-geometry libraries (PHATE, graphtools).

Scale. DSE depends only on ``x / sigma``. The points are centred and multiplied
by a power of two (exact in floating point) so that their largest coordinate is
about 1, and the bandwidth by the same power: every finite input whose
``x / sigma`` is representable gives the right value, from 1e-30 to 1e30 in
float32, without overflowing squared distances or underflowing ``sigma^2``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse._checks import Bandwidth

# Full float32 products, passed to every matmul that feeds distances, kernels or a
# result: at default precision GPUs may use TF32 and TPUs bfloat16 passes (about 3 digits).
HIGHEST = jax.lax.Precision.HIGHEST


class ScaledPoints(NamedTuple):
    """Points ready for the kernel: ``points`` ``[n, d]`` centred and scaled by a
    power of two, ``scales`` ``[n]`` the per-point bandwidths in the same units.

    A pytree of arrays: a subset of rows is ``jax.tree.map(lambda a: a[idx], p)``.
    """

    points: jax.Array
    scales: jax.Array


def _power_of_two_scale(values, exponent):
    """``values * 2**exponent`` exactly, in two steps so that no factor overflows."""
    dtype = values.dtype
    half = exponent // 2
    one = jnp.ones((), dtype)
    return values * jnp.ldexp(one, half) * jnp.ldexp(one, exponent - half)


def _exponent_of_max(y):
    """``e`` with ``max|y| = m 2**e``, ``m`` in [0.5, 1); 0 for an all-zero or non-finite ``y``."""
    top = jax.lax.stop_gradient(jnp.max(jnp.abs(y)))
    _, e = jnp.frexp(jnp.where(jnp.isfinite(top) & (top > 0), top, 1.0))
    return e


def standardise(x, keep=None):
    """Centre ``x`` ``[n, d]`` on its kept rows and scale it by a power of two.

    Returns ``(y, e)`` with ``y = (x - mean) * 2**-e`` (rows not kept are 0, so
    they may hold anything, NaN included) and ``max|y| <= 1``. Distances scale by
    ``2**e`` exactly; the gradient passes through the centring.
    """
    if keep is not None:
        x = jnp.where(keep[:, None], x, 0.0)
    e0 = _exponent_of_max(x)
    y = _power_of_two_scale(x, -e0)
    w = jnp.ones(x.shape[0], x.dtype) if keep is None else keep.astype(x.dtype)
    y = (y - jnp.matmul(w, y, precision=HIGHEST)[None, :] / jnp.sum(w)) * w[:, None]
    e1 = _exponent_of_max(y)
    return _power_of_two_scale(y, -e1), e0 + e1


def sq_distances(a, b):
    """Squared Euclidean distances ``[m, k]`` between the rows of ``a`` ``[m, d]`` and ``b`` ``[k, d]``.

    ``|a|^2 + |b|^2 - 2 a.b``; the one formula every path uses (inputs are
    centred by :func:`standardise`, which avoids cancellation). Values within
    the formula's rounding, ``2 sqrt(d) eps (|a|^2 + |b|^2)``, are set to 0:
    duplicated rows are then exactly 0 apart, as the knn rule needs (a point
    with k duplicates has bandwidth 0; a rounding-level distance instead gave
    it a bandwidth of about ``sqrt(eps)`` and DSE 0.37 bits too high on data
    with many duplicates). Rounding of this formula was measured at up to
    ``3.7 eps (|a|^2 + |b|^2)`` for d = 2048.
    """
    cross = jnp.matmul(a, b.T, precision=HIGHEST)
    norms = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :]
    d2 = norms - 2.0 * cross
    noise = 2.0 * math.sqrt(a.shape[1]) * jnp.finfo(d2.dtype).eps * norms
    # ``<=`` rather than ``>``: a NaN distance (from a NaN input) stays NaN.
    return jnp.where(d2 <= noise, 0.0, d2)


def self_sq_distances(y):
    """:func:`sq_distances` of ``y`` with itself, with an exact zero diagonal."""
    n = y.shape[0]
    return jnp.where(jnp.eye(n, dtype=bool), 0.0, sq_distances(y, y))


def kth_neighbour_sq(d2_rows, k: int, excluded):
    """Squared distance from each row to its k-th nearest column not ``excluded`` ``[rows, n]``."""
    neg = -jnp.where(excluded, jnp.inf, d2_rows)
    return -jax.lax.top_k(neg, k)[0][:, k - 1]


def median_sq_distance(d2, keep=None):
    """``median_{i < j} d2_ij`` over the pairs of kept rows."""
    n = d2.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    vals = d2[iu, ju]
    if keep is None:
        return jnp.median(vals)
    return jnp.nanmedian(jnp.where(keep[iu] & keep[ju], vals, jnp.nan))


def resolve_scales(bandwidth: Bandwidth, shape, dtype, e, keep=None, d2=None):
    """Per-point bandwidths ``[n]`` for standardised points of ``shape`` ``[n, d]`` (scaled by ``2**-e``).

    ``d2`` (the points' :func:`self_sq_distances`) is needed by the data rules
    "median" and "knn". Invalid values (a non-positive or non-finite fixed
    sigma, a zero median distance) give NaN scales.
    """
    n, d = shape
    if bandwidth.rule in ("fixed", "sqrt_dim"):
        sigma = jnp.asarray(bandwidth.value if bandwidth.rule == "fixed" else np.sqrt(d), dtype)
        valid = jnp.isfinite(sigma) & (sigma > 0)
        s = _power_of_two_scale(jnp.where(valid, sigma, jnp.nan), -e)
        return jnp.broadcast_to(s, (n,))
    if bandwidth.rule == "median":
        med = median_sq_distance(d2, keep)
        s = jnp.sqrt(jnp.where(med > 0, med, jnp.nan) / 2.0)
        return jnp.broadcast_to(s, (n,))
    excluded = jnp.eye(n, dtype=bool)
    if keep is not None:
        excluded = excluded | ~keep[None, :]
    kth = kth_neighbour_sq(d2, int(bandwidth.k or 0), excluded)  # the knn rule always has its k
    # A point with k duplicates has bandwidth 0: sqrt's gradient there is guarded.
    return jnp.where(kth > 0, jnp.sqrt(jnp.where(kth > 0, kth, 1.0)), 0.0)


def kernel(d2, scales_rows, scales_cols):
    """``exp(-d2_ij / (2 s_i s_j))``; where ``s_i s_j`` is 0, 1 for coincident points and 0 otherwise."""
    s2 = scales_rows[:, None] * scales_cols[None, :]
    positive = s2 > 0
    exponent = -d2 / (2.0 * jnp.where(positive, s2, 1.0))
    exponent = jnp.where(positive, exponent, jnp.where(d2 > 0, -jnp.inf, 0.0))
    return jnp.exp(exponent)


def zscore(x, keep=None):
    """Each feature centred and divided by its standard deviation over the kept rows (1 where it is 0)."""
    w = jnp.ones(x.shape[0], x.dtype) if keep is None else keep.astype(x.dtype)
    x = jnp.where(w[:, None] > 0, x, 0.0)
    mean = jnp.matmul(w, x, precision=HIGHEST) / jnp.sum(w)
    centred = (x - mean) * w[:, None]
    std = jnp.sqrt(jnp.matmul(w, centred * centred, precision=HIGHEST) / jnp.sum(w))
    return centred / jnp.where(std > 0, std, 1.0)


def prepare_points(x, bandwidth: Bandwidth, keep=None, standardize: bool = False) -> ScaledPoints:
    """Standardise ``x`` ``[n, d]`` and resolve its bandwidth rule once, on the kept rows.

    ``standardize``: z-score every feature first (on the kept rows).
    """
    if standardize:
        x = zscore(x, keep)
    y, e = standardise(x, keep)
    d2 = self_sq_distances(y) if bandwidth.rule in ("median", "knn") else None
    return ScaledPoints(y, resolve_scales(bandwidth, y.shape, y.dtype, e, keep, d2))


def usable(points: ScaledPoints, keep=None):
    """Whether prepared points can be used (traced bool): every kept point and its
    bandwidth finite, and at least two kept rows. Where not, the public
    functions return NaN under ``jit`` (the checks raise on concrete input)."""
    keep = jnp.ones(points.points.shape[0], bool) if keep is None else keep
    finite = jnp.all(jnp.where(keep[:, None], jnp.isfinite(points.points), True))
    return finite & jnp.all(jnp.where(keep, jnp.isfinite(points.scales), True)) & (jnp.sum(keep) >= 2)


def affinity_matrix(points: ScaledPoints, keep=None, d2=None):
    """Gaussian affinities ``[n, n]`` of prepared points; rows and columns not kept are 0.

    ``d2``: the points' :func:`self_sq_distances`, if already at hand.
    """
    d2 = self_sq_distances(points.points) if d2 is None else d2
    G = kernel(d2, points.scales, points.scales)
    if keep is not None:
        G = jnp.where(keep[:, None] & keep[None, :], G, 0.0)
    return G


def gaussian_affinity(x, *, sigma=10.0, mask=None):
    """Gaussian affinity matrix ``G`` ``[n, n]`` of the rows of ``x`` ``[n, d]``.

    ``G_ij = exp(-||x_i - x_j||^2 / (2 s_i s_j))`` with ``sigma`` as in the module
    docstring (a number gives ``s_i = sigma``). Rows and columns of points that
    ``mask`` drops are exactly 0. Differentiable in ``x`` and ``sigma``.

    Raises TypeError/ValueError naming the argument for bad input.

    >>> import jax.numpy as jnp
    >>> G = gaussian_affinity(jnp.array([[0.0], [1.0]]), sigma=1.0)
    >>> round(float(G[0, 1]), 4)
    0.6065
    """
    x, bandwidth, mask = _checks.check_points_and_bandwidth(x, sigma, mask)
    points = prepare_points(x, bandwidth, mask)
    return jnp.where(usable(points, mask), affinity_matrix(points, mask), jnp.nan)


def pairwise_sq_distances(x, mask=None):
    """Squared Euclidean distances ``[n, n]`` between the rows of ``x`` ``[n, d]``.

    Exact zero diagonal, no negative entry; computed on centred points (no
    cancellation for data far from the origin). Rows and columns that ``mask``
    drops are 0.

    >>> import jax.numpy as jnp
    >>> pairwise_sq_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
    [[0.0, 25.0], [25.0, 0.0]]
    """
    x, mask = _checks.check_points(x, mask)
    y, e = standardise(x, mask)
    ok = usable(ScaledPoints(y, jnp.ones(x.shape[0], y.dtype)), mask)
    return jnp.where(ok, _power_of_two_scale(self_sq_distances(y), 2 * e), jnp.nan)


def resolved_sigma(x, sigma, mask=None):
    """The bandwidth a scalar rule stands for on ``x`` ``[n, d]`` (in ``x``'s units).

    ``"median"`` and ``"sqrt_dim"`` give their number (NaN when the median
    distance is 0); a number is returned as it is. The ``"knn"`` rule has one
    bandwidth per point and no single number: a ValueError.

    >>> import jax.numpy as jnp
    >>> float(resolved_sigma(jnp.array([[0.0], [2.0]]), "median"))  # sqrt(4 / 2)
    1.4142135381698608
    """
    x, bandwidth, mask = _checks.check_points_and_bandwidth(x, sigma, mask)
    if bandwidth.rule == "knn":
        raise ValueError("sigma: the 'knn' rule gives one bandwidth per point, not one number")
    y, e = standardise(x, mask)
    d2 = self_sq_distances(y) if bandwidth.rule == "median" else None
    return _power_of_two_scale(resolve_scales(bandwidth, y.shape, y.dtype, e, mask, d2)[0], e)

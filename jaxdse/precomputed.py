"""Precomputed inputs: a distance matrix or an affinity (kernel) matrix instead of points.

As graphtools' ``precomputed="distance" | "affinity"``:

* ``"distance"``: ``D`` ``[n, n]`` Euclidean-like distances (symmetric, non-negative,
  zero diagonal). The kernel is ``exp(-D_ij^2 / (2 s_i s_j))`` with the bandwidth
  rules of :mod:`jaxdse.affinity` ("median" over the pairs, "knn" per row); the
  ``"sqrt_dim"`` rule needs a dimension and does not apply.
* ``"affinity"``: ``G`` ``[n, n]`` used as the affinity matrix itself
  (symmetric, non-negative, every kept row with a positive sum), e.g. a kNN graph
  or a cosine-similarity kernel clipped at 0; ``sigma`` is not used.

Masks work as for points: rows and columns that a mask drops are ignored
exactly (and may hold anything). For mutual information, each subset takes
its block of the matrix, with the bandwidths resolved on the whole set.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.affinity import Bandwidth, _exponent_of_max, _power_of_two_scale, kernel, resolve_scales

KINDS = ("distance", "affinity")


class MatrixRows(NamedTuple):
    """Rows of a precomputed matrix ready for the kernel: ``matrix`` ``[n, n]``
    (squared distances scaled by a power of two, or affinities), each row's
    column ``index`` ``[n]`` and bandwidth ``scales`` ``[n]``. A subset of rows
    is ``jax.tree.map(lambda a: a[idx], rows)``; :func:`subset_affinity` then
    takes the matching columns.
    """

    matrix: jax.Array
    index: jax.Array
    scales: jax.Array


TOLERANCE = 1e-5  # symmetry and zero diagonal, relative to the largest entry


def check_matrix(a, kind: str, mask=None, name: str = "x", *, tolerance: float = TOLERANCE):
    """Validate a precomputed ``[n, n]`` matrix (values only when concrete); returns a float array."""
    _checks.check_choice(kind, "precomputed", KINDS)
    a = _checks.as_array(a, name)
    shape = np.shape(a)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} with precomputed={kind!r} must be a square [n, n] matrix, got shape {tuple(shape)}")
    if shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows, got n={shape[0]}")
    mask = _checks.check_mask(mask, shape[0])
    a = _checks.as_points(a, name, mask=mask)
    if _checks.is_concrete(a) and (mask is None or _checks.is_concrete(mask)):
        m = np.asarray(a, np.float64)
        if mask is not None:
            keep = np.asarray(mask)
            m = m[np.ix_(keep, keep)]
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{name} has non-finite entries in the rows and columns that are kept")
        scale = max(np.max(np.abs(m)), np.finfo(np.float64).tiny)
        if np.max(np.abs(m - m.T)) > tolerance * scale:
            raise ValueError(f"{name} with precomputed={kind!r} must be symmetric (|{name} - {name}^T| <= {tolerance:g} max|{name}|)")
        if np.min(m) < 0:
            raise ValueError(f"{name} with precomputed={kind!r} must be non-negative, its smallest entry is {np.min(m):g}")
        if kind == "distance" and np.max(np.abs(np.diag(m))) > tolerance * scale:
            raise ValueError(f"{name} with precomputed='distance' must have a zero diagonal")
        if kind == "affinity" and np.min(m.sum(axis=1)) <= 0:
            raise ValueError(f"{name} with precomputed='affinity' has a row of zeros (an isolated point): no diffusion from it")
    return a


def _valid(a, kind: str, keep):
    """The checks of :func:`check_matrix` on ``a`` (dropped pairs already 0), traced: a boolean scalar."""
    scale = jnp.maximum(jnp.max(jnp.abs(a)), jnp.finfo(a.dtype).tiny)
    ok = (jnp.max(jnp.abs(a - a.T)) <= TOLERANCE * scale) & (jnp.min(a) >= 0)
    if kind == "distance":
        return ok & (jnp.max(jnp.abs(jnp.diagonal(a))) <= TOLERANCE * scale)
    return ok & jnp.all(jnp.where(keep, jnp.sum(a, axis=1) > 0, True))


def check_bandwidth(bandwidth: Bandwidth, kind: str):
    if kind == "distance" and bandwidth.rule == "sqrt_dim":
        raise ValueError("sigma='sqrt_dim' needs the points' dimension; with precomputed='distance' give a number or a rule")


def prepare_matrix(a, kind: str, bandwidth: Bandwidth, keep=None) -> MatrixRows:
    """Scale a distance matrix by a power of two and resolve its bandwidth once (affinities as they are)."""
    n = a.shape[0]
    index = jnp.arange(n)
    if keep is not None:
        pairs = keep[:, None] & keep[None, :]
        a = jnp.where(pairs, a, 0.0)
    # What check_matrix raises on eagerly makes the matrix NaN under jit.
    a = jnp.where(_valid(a, kind, jnp.ones(n, bool) if keep is None else keep), a, jnp.nan)
    if kind == "affinity":
        return MatrixRows(a, index, jnp.ones(n, a.dtype))
    e = _exponent_of_max(a)
    d2 = jnp.square(_power_of_two_scale(a, -e))
    d2 = jnp.where(jnp.eye(n, dtype=bool), 0.0, d2)
    return MatrixRows(d2, index, resolve_scales(bandwidth, (n, 1), a.dtype, e, keep, d2))


def subset_affinity(rows: MatrixRows, keep, kind: str):
    """The affinities ``[m, m]`` of a (gathered) subset of rows; pairs not kept are 0."""
    block = rows.matrix[:, rows.index]
    if kind == "distance":
        same = rows.index[:, None] == rows.index[None, :]
        block = kernel(jnp.where(same, 0.0, block), rows.scales, rows.scales)
    return jnp.where(keep[:, None] & keep[None, :], block, 0.0)


def rows_finite(rows: MatrixRows, keep):
    """Whether the kept block and bandwidths are finite (traced)."""
    block = rows.matrix[:, rows.index]
    pairs = keep[:, None] & keep[None, :]
    return jnp.all(jnp.where(pairs, jnp.isfinite(block), True)) & jnp.all(jnp.where(keep, jnp.isfinite(rows.scales), True))

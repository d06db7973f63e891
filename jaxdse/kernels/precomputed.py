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
from jaxdse.kernels.points import Bandwidth, _exponent_of_max, _power_of_two_scale, kernel, resolve_scales

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


def check_matrix(a, kind: str, mask=None, name: str = "x"):
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
        keep = np.ones(shape[0], bool) if mask is None else np.asarray(mask)
        if not np.all(np.isfinite(m[np.ix_(keep, keep)])):
            raise ValueError(f"{name} has non-finite entries in the rows and columns that are kept")
        m = np.where(keep[:, None] & keep[None, :], m, 0.0)
        with jax.ensure_compile_time_eval():
            failed = [what for what, ok in _properties(jnp.asarray(m, a.dtype), kind, keep).items() if not bool(ok)]
        if failed:
            raise ValueError(f"{name} with precomputed={kind!r} " + _FAILURES[failed[0]].format(name=name, tol=TOLERANCE, low=np.min(m)))
    return a


# What check_matrix says when a property fails.
_FAILURES = {
    "symmetric": "must be symmetric (|{name} - {name}^T| <= {tol:g} max|{name}|)",
    "non-negative": "must be non-negative, its smallest entry is {low:g}",
    "zero diagonal": "must have a zero diagonal",
    "no isolated row": "has a row of zeros (an isolated point): no diffusion from it",
}


def _properties(a, kind: str, keep):
    """Each property a precomputed matrix ``a`` (dropped pairs already 0) must have, as a boolean scalar.

    The one copy of these checks: :func:`check_matrix` evaluates them on
    concrete input to name a failure; :func:`prepare_matrix` traces them to give
    NaN under ``jit``.
    """
    scale = jnp.maximum(jnp.max(jnp.abs(a)), jnp.finfo(a.dtype).tiny)
    ok = {"symmetric": jnp.max(jnp.abs(a - a.T)) <= TOLERANCE * scale, "non-negative": jnp.min(a) >= 0}
    if kind == "distance":
        ok["zero diagonal"] = jnp.max(jnp.abs(jnp.diagonal(a))) <= TOLERANCE * scale
    else:
        ok["no isolated row"] = jnp.all(jnp.where(keep, jnp.sum(a, axis=1) > 0, True))
    return ok


def _valid(a, kind: str, keep):
    """All of :func:`_properties`, traced: a boolean scalar."""
    return jnp.all(jnp.stack(list(_properties(a, kind, keep).values())))


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

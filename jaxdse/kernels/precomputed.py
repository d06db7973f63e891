"""Precomputed inputs: a distance matrix or an affinity (kernel) matrix instead of points.

As graphtools' ``precomputed="distance" | "affinity"``:

* ``"distance"``: ``D`` ``[n, n]`` Euclidean-like distances (symmetric, non-negative,
  zero diagonal). The kernel is ``exp(-D_ij^2 / (2 s_i s_j))`` with the bandwidth
  rules of :mod:`jaxdse.kernels.points` ("median" over the pairs, "knn" per row); the
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

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.kernels.points import _exponent_of_max, _power_of_two_scale, kernel, resolve_scales


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


def prepare_matrix(a, kind: str, bandwidth: Bandwidth, keep=None) -> MatrixRows:
    """Scale a distance matrix by a power of two and resolve its bandwidth once (affinities as they are)."""
    n = a.shape[0]
    index = jnp.arange(n)
    if keep is not None:
        pairs = keep[:, None] & keep[None, :]
        a = jnp.where(pairs, a, 0.0)
    # What _checks.check_matrix raises on eagerly makes the matrix NaN under jit.
    a = jnp.where(_checks.valid_matrix(a, kind, jnp.ones(n, bool) if keep is None else keep), a, jnp.nan)
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
    return jnp.all(jnp.where(pairs, jnp.isfinite(block), True)) & jnp.all(
        jnp.where(keep, jnp.isfinite(rows.scales), True)
    )

"""Matrix-free products with the symmetric diffusion operator.

The operator is ``S = diag(r) G diag(r)`` of :mod:`jaxdse.solvers.diffusion` with its
known eigenpair ``(1, v)`` removed: ``A = S - v v^T``. Two ways to apply it to a
block of vectors ``V`` ``[n, p]``:

* dense: ``S`` ``[n, n]`` is built once (:func:`jaxdse.solvers.diffusion.dense_symmetric_operator`,
  or from a precomputed affinity matrix) and multiplied;
* blockwise: row blocks ``G[I, :]`` ``[b, n]`` of the Gaussian affinities are
  recomputed from the points at every product, deflated entry by entry
  (``r_i G_ij r_j - v_i v_j``) and multiplied by all ``p`` columns at once, so
  memory is ``O(n (d + p) + b n)`` and no ``n x n`` array exists. Under
  differentiation each block is recomputed rather than stored.

Both give an :class:`Operator` from the same prepared points
(:class:`jaxdse.kernels.points.ScaledPoints`, bandwidths already resolved), hence the
same quantity: a ``matmat`` closure plus the exact quantities a
variance-reduced trace estimator needs (``trace(A)``, ``|A|_F^2``, ``v``).

With a ``jax.sharding.Mesh``, the rows of the points (and so the row blocks) are
split over all the mesh's devices (:func:`jaxdse.solvers.sharding.row_sharded`); every device holds
all points ``[n, d]`` (small) and the vectors, and computes its share of the rows of ``A V``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdse.kernels.points import HIGHEST, ScaledPoints, kernel, sq_distances
from jaxdse.solvers.diffusion import normalisation
from jaxdse.solvers.sharding import row_sharded


class Operator(NamedTuple):
    """The deflated operator ``A = S - v v^T`` ``[n, n]`` and exact facts about it.

    ``matmat(V)`` returns ``A V`` for ``V`` ``[n, p]``; ``trace`` is ``tr A``;
    ``frobenius_sq`` is ``|A|_F^2 = tr A^2``; ``v`` ``[n]`` is the unit eigenvector
    of ``S`` for eigenvalue 1; ``keep`` ``[n]`` marks real (kept, unpadded) rows.
    """

    matmat: Callable
    trace: jax.Array
    frobenius_sq: jax.Array
    v: jax.Array
    keep: jax.Array


def dense_operator(S, v, keep) -> Operator:
    """:class:`Operator` from the dense ``S`` ``[n, n]`` (and its eigenvector ``v``) held in memory."""
    # A is formed once: its products then carry no cancellation between S V
    # and v v^T V (for a near-constant kernel both are about V, A V about 0).
    A = S - v[:, None] * v[None, :]
    return Operator(lambda V: jnp.matmul(A, V, precision=HIGHEST), jnp.trace(S) - 1.0, jnp.sum(A * A), v, keep)


def blockwise_kernel_matmat(
    points: ScaledPoints, V, *, block_size: int, weights, square: bool = False, mesh=None, scale=None, deflate=None
):
    """``M V`` ``[n, p]`` (or ``(M * M) V`` if ``square``) without forming ``M``.

    ``M = G`` by default, the kernel (:func:`jaxdse.kernels.points.kernel` of the
    prepared points) on kept rows and columns (``weights`` ``[n]``: 1.0 kept,
    0.0 not; a float array, so that the closure over it can be differentiated),
    0 otherwise. With ``scale`` ``r`` and
    ``deflate`` ``v`` ``[n]``, ``M_ij = r_i G_ij r_j - v_i v_j``, formed entry by
    entry: for a near-constant kernel both terms are about ``1 / n`` and their
    difference small, which a product ``S V - v (v^T V)`` would lose to
    rounding. ``n`` is a multiple of ``block_size`` (and of the mesh size times
    ``block_size`` with a ``mesh``); ``V`` ``[n, p]``. Each row block
    ``[block_size, n]`` is built and multiplied by all of ``V``.
    """
    y, s = points
    n = y.shape[0]
    w = weights
    r = jnp.ones(n, y.dtype) if scale is None else scale
    v = jnp.zeros(n, y.dtype) if deflate is None else deflate
    V = V * w[:, None]
    index = jnp.arange(n)

    def rows(i_rows, y_rows, s_rows, w_rows, r_rows, v_rows, y_all, s_all, r_all, v_all, V_all):
        nb = y_rows.shape[0] // block_size

        def one_block(args):
            return _block_product(*args, y_all, s_all, r_all, v_all, V_all, square)

        blocks = tuple(a.reshape((nb, block_size) + a.shape[1:]) for a in (i_rows, y_rows, s_rows, r_rows, v_rows))
        out = jax.lax.map(one_block, blocks)
        return out.reshape(y_rows.shape[0], -1) * w_rows[:, None]

    if mesh is None:
        return rows(index, y, s, w, r, v, y, s, r, v, V)
    # Each device computes its share of the rows; the result is gathered back to
    # every device: the Lanczos recurrences on [n, p] vectors stay replicated
    # and cheap, only the kernel work is split.
    return row_sharded(rows, mesh, num_row_args=6)(index, y, s, w, r, v, y, s, r, v, V)


@partial(jax.checkpoint, static_argnums=(10,))
def _block_product(ib, yb, sb, rb, vb, y_all, s_all, r_all, v_all, V_all, square):
    """One row block of ``M V`` (or ``(M * M) V``); recomputed, not stored, under differentiation."""
    # The diagonal is exactly 0, as in the dense path.
    d2 = jnp.where(ib[:, None] == jnp.arange(y_all.shape[0])[None, :], 0.0, sq_distances(yb, y_all))
    M = rb[:, None] * kernel(d2, sb, s_all) * r_all[None, :] - vb[:, None] * v_all[None, :]
    return jnp.matmul(M * M if square else M, V_all, precision=HIGHEST)


def blockwise_operator(points: ScaledPoints, alpha, keep, *, block_size: int, mesh=None) -> Operator:
    """:class:`Operator` whose products rebuild row blocks of ``G`` from the points.

    The caller pads the points so that ``n`` divides into blocks (``keep`` False
    on padding).
    """
    dtype = points.points.dtype
    weights = keep.astype(dtype)

    def products(V, **deflated):
        return blockwise_kernel_matmat(points, V, block_size=block_size, weights=weights, mesh=mesh, **deflated)

    r, v = normalisation(lambda u: products(u[:, None])[:, 0], keep, alpha, dtype)
    matmat = partial(products, scale=r, deflate=v)
    # G_ii = 1 on kept rows, so tr A = sum r_i^2 - |v|^2; |A|_F^2 = 1^T (A*A) 1 (one more pass).
    trace = jnp.sum(r * r) - 1.0
    frobenius_sq = jnp.sum(matmat(jnp.ones((r.shape[0], 1), dtype), square=True))
    return Operator(matmat, trace, frobenius_sq, v, keep)

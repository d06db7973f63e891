"""Matrix-free products with the symmetric diffusion operator.

The operator is ``S = D^-1/2 K D^-1/2`` of :mod:`jaxdse.diffusion` with its known
eigenpair ``(1, v)`` removed: ``A = S - v v^T``. Two ways to apply it to a block
of vectors ``V`` ``[n, p]``:

* dense: ``S`` ``[n, n]`` is built once (reusing
  :func:`jaxdse.diffusion.symmetric_diffusion_operator`) and multiplied;
* blockwise: row blocks ``G[I, :]`` ``[b, n]`` of the Gaussian affinities are
  recomputed from ``x`` at every product and multiplied by all ``p`` columns at
  once, so memory is ``O(n (d + p) + b n)`` and no ``n x n`` array exists. The
  degrees (and, for ``alpha > 0``, the anisotropy ``q = G 1``) come from the same
  blockwise product applied to a vector of ones.

Both give an :class:`Operator`: a ``matmat`` closure plus the exact quantities a
variance-reduced trace estimator needs (``trace(A)``, ``|A|_F^2``, ``v``).

With a ``jax.sharding.Mesh``, the rows of ``x`` (and so the row blocks) are split
over all the mesh's devices (:func:`jaxdse.sharding.row_sharded`); every device holds all of ``x`` ``[n, d]``
(small) and the vectors, and computes its share of the rows of ``A V``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxdse.affinity import HIGHEST
import numpy as np

from jaxdse.affinity import Bandwidth
from jaxdse.diffusion import symmetric_diffusion_operator
from jaxdse.sharding import row_sharded


class Operator(NamedTuple):
    """The deflated operator ``A = S - v v^T`` ``[n, n]`` and exact facts about it.

    ``matmat(V)`` returns ``A V`` for ``V`` ``[n, p]``; ``trace`` is ``tr A``;
    ``frobenius_sq`` is ``|A|_F^2 = tr A^2``; ``v`` ``[n]`` is the unit eigenvector
    of ``S`` for eigenvalue 1; ``keep`` ``[n]`` marks real (unmasked, unpadded)
    rows.
    """

    matmat: Callable
    trace: jax.Array
    frobenius_sq: jax.Array
    v: jax.Array
    keep: jax.Array


def dense_operator(x, bandwidth: Bandwidth, alpha, keep) -> Operator:
    """:class:`Operator` from the dense ``S`` ``[n, n]`` held in memory."""
    S, v = symmetric_diffusion_operator(x, sigma=bandwidth, alpha=alpha, mask=keep)

    def matmat(V):
        return jnp.matmul(S, V, precision=HIGHEST) - v[:, None] * jnp.matmul(v, V, precision=HIGHEST)[None, :]

    trace = jnp.trace(S) - 1.0
    frobenius_sq = jnp.sum(S * S) - 1.0
    return Operator(matmat, trace, frobenius_sq, v, keep)


def blockwise_kernel_matmat(x, V, *, inv_two_sigma_sq, block_size: int, keep, square: bool = False, mesh=None):
    """``G V`` ``[n, p]`` (or ``(G * G) V`` if ``square``) without forming ``G``.

    ``G_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))`` for kept rows and columns, 0
    otherwise. ``x`` ``[n, d]`` with ``n`` a multiple of ``block_size`` (and of
    the mesh size times ``block_size`` with a ``mesh``); ``V`` ``[n, p]``.
    Each row block ``[block_size, n]`` is built and multiplied by all of ``V``.
    """
    n = x.shape[0]
    w = keep.astype(x.dtype)
    V = V * w[:, None]
    sq = jnp.sum(x * x, axis=1)

    def rows(x_rows, sq_rows, w_rows, x_all, sq_all, V_all):
        nb = x_rows.shape[0] // block_size

        def one_block(args):
            xb, sqb = args
            d2 = jnp.maximum(sqb[:, None] + sq_all[None, :] - 2.0 * jnp.matmul(xb, x_all.T, precision=HIGHEST), 0.0)
            e = -d2 * inv_two_sigma_sq
            if square:
                e = 2.0 * e
            return jnp.matmul(jnp.exp(e), V_all, precision=HIGHEST)

        blocks = (x_rows.reshape(nb, block_size, -1), sq_rows.reshape(nb, block_size))
        out = jax.lax.map(one_block, blocks)
        return out.reshape(x_rows.shape[0], -1) * w_rows[:, None]

    if mesh is None:
        return rows(x, sq, w, x, sq, V)
    # Each device computes its share of the rows; the result is gathered back to
    # every device: the Lanczos recurrences on [n, p] vectors stay replicated
    # and cheap, only the kernel work is split.
    return row_sharded(rows, mesh, num_row_args=3)(x, sq, w, x, sq, V)


def blockwise_operator(x, bandwidth: Bandwidth, alpha, keep, *, block_size: int, mesh=None) -> Operator:
    """:class:`Operator` whose products rebuild row blocks of ``G`` from ``x``.

    ``bandwidth`` must be a fixed number or ``"sqrt_dim"``; ``x`` ``[n, d]`` is
    padded by the caller so that ``n`` divides into blocks (``keep`` False on
    padding). Centres ``x`` on its kept rows first, as the dense path does.
    """
    if bandwidth.rule == "fixed":
        sigma = jnp.asarray(bandwidth.value, x.dtype)
    elif bandwidth.rule == "sqrt_dim":
        sigma = jnp.sqrt(jnp.asarray(x.shape[1], x.dtype))
    else:  # pragma: no cover - checked by the caller
        raise ValueError(f"the blockwise operator needs a fixed or 'sqrt_dim' sigma, got rule {bandwidth.rule!r}")
    w = keep.astype(x.dtype)
    x = x - jnp.matmul(w, x, precision=HIGHEST) / jnp.sum(w)
    x = x * w[:, None]
    inv = 1.0 / (2.0 * sigma * sigma)

    def gmat(V, square=False):
        return blockwise_kernel_matmat(
            x, V, inv_two_sigma_sq=inv, block_size=block_size, keep=keep, square=square, mesh=mesh
        )

    ones = w[:, None]
    # Anisotropy: K = diag(q^-alpha) G diag(q^-alpha), q = G 1 (skipped when alpha is 0).
    if isinstance(alpha, (int, float)) and alpha == 0:
        q_alpha = w
    else:
        q = jnp.where(keep, gmat(ones)[:, 0], 1.0)
        q_alpha = jnp.exp(-jnp.asarray(alpha, x.dtype) * jnp.log(q))
    deg = jnp.where(keep, q_alpha * gmat(q_alpha[:, None] * ones)[:, 0], 1.0)
    r = jnp.where(keep, q_alpha * jax.lax.rsqrt(deg), 0.0)  # S = diag(r) G diag(r)
    sqrt_deg = jnp.where(keep, jnp.sqrt(deg), 0.0)
    v = sqrt_deg / jnp.linalg.norm(sqrt_deg)

    def matmat(V):
        return r[:, None] * gmat(r[:, None] * V) - v[:, None] * jnp.matmul(v, V, precision=HIGHEST)[None, :]

    # G_ii = 1, so tr S = sum r_i^2 and |S|_F^2 = r^T (G*G) r (one more pass).
    trace = jnp.sum(r * r) - 1.0
    frobenius_sq = jnp.sum(r * gmat((r * r)[:, None], square=True)[:, 0] * r) - 1.0
    return Operator(matmat, trace, frobenius_sq, v, keep)

"""The passes over row blocks of the Nystrom solver: the sums its entropy is computed from.

A block of rows gives the factor rows ``F`` ``[b, m]`` (and ``Fh`` for the first
``m/2`` landmarks, for the error indicator); the passes add up ``F^T 1`` (and,
with anisotropy, the weighted ``(q^-a F)^T 1``), then ``F^T D^-1 F``, the trace
the factor misses and the row count (:class:`Sums`). With a mesh, the blocks
are split over its devices and each pass's sums are added over them
(:func:`accumulate_sharded`). Used by :mod:`jaxdse.entropy.nystrom` and the
streaming functions of :mod:`jaxdse.layers.streaming`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxdse.solvers._linalg import HIGHEST
from jaxdse.solvers.sharding import auto_mesh, local_part, num_shards


class Sums(NamedTuple):
    """What the passes accumulate, for the full and the half factor."""

    A: jax.Array  # [m, m]  F^T D^-1 F
    Ah: jax.Array  # [h, h]
    missed: jax.Array  # the trace of S the factor misses (see missed_trace)
    count: jax.Array  # kept rows


def _scan(fn, init, blocks, axes=None):
    """``init`` plus the sum of ``fn(*block)`` over ``blocks`` (leading block axis), and over the
    devices of the mesh axes ``axes`` when called inside ``shard_map``."""
    body = jax.checkpoint(lambda c, b: (jax.tree.map(jnp.add, c, fn(*b)), None))
    if axes is None:
        return jax.lax.scan(body, init, blocks)[0]
    zero = jax.tree.map(jnp.zeros_like, init)
    return jax.tree.map(jnp.add, init, jax.lax.psum(jax.lax.scan(body, zero, blocks)[0], axes))


def accumulate_sharded(blocks, factors, alpha, mesh):
    """:func:`accumulate` with the blocks split over the devices of ``mesh`` (all axes flattened).

    One ``shard_map``: every device runs the passes on its share of the blocks
    (padded with all-zero blocks, whose rows are not kept and add nothing) and
    each pass's sums are added over the devices before the next pass; the
    result is replicated. What ``factors`` closes over becomes explicit
    arguments, so that nothing inside carries the caller's sharding.
    """
    mesh = auto_mesh(mesh)
    axes, devices = tuple(mesh.axis_names), num_shards(mesh)
    nb = jax.tree.leaves(blocks)[0].shape[0]
    per = -(-nb // devices)
    blocks = jax.tree.map(lambda a: jnp.pad(a, ((0, per * devices - nb),) + ((0, 0),) * (a.ndim - 1)), blocks)
    factors, consts = jax.closure_convert(factors, *jax.tree.map(lambda a: a[0], blocks))

    def local(blocks, consts, alpha):
        part = jax.tree.map(lambda a: local_part(a, axes, per), blocks)
        return accumulate(part, lambda *b: factors(*b, *consts), alpha, axes=axes)

    run = jax.shard_map(local, mesh=mesh, in_specs=P(), out_specs=P(), check_vma=False)
    return run(blocks, consts, jnp.asarray(alpha))


def anisotropy(G, sg, keep, alpha):
    """``q^-alpha`` ``[B]`` with ``q = G sg`` on the kept rows (0 elsewhere)."""
    q = jnp.matmul(G, sg, precision=HIGHEST)
    ok = keep & (q > 0)
    return jnp.where(ok, jnp.exp(-alpha * jnp.log(jnp.where(ok, q, 1.0))), 0.0)


def gram(G, w, sg):
    """``sum_i w_i^2 G_i G_i^T / d_i`` ``[k, k]`` with ``d_i = w_i G_i . sg`` (rows with ``d_i <= 0`` left out)."""
    G = G * w[:, None]
    deg = jnp.matmul(G, sg, precision=HIGHEST)
    ok = deg > 0
    Gs = G * jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, deg, 1.0)), 0.0)[:, None]
    return jnp.matmul(Gs.T, Gs, precision=HIGHEST)


def missed_trace(G, w, sg, keep):
    """``sum_i min(w_i^2 (1 - |G_i|^2) / d_i, 1)`` over the kept rows, ``d_i = w_i G_i . sg``.

    ``w_i^2`` is the exact diagonal of the (anisotropic) kernel, ``w_i^2 |G_i|^2``
    the factor's, and dividing by the degree gives the diagonal of ``S``. With the
    factor's degrees (at most the exact ones) each term is at least the exact
    share; a row the factor leaves out (``d_i <= 0``) counts 1.
    """
    Gw = G * w[:, None]
    deg = jnp.matmul(Gw, sg, precision=HIGHEST)
    ok = deg > 0
    share = (w * w - jnp.sum(Gw * Gw, 1)) / jnp.where(ok, deg, 1.0)
    share = jnp.where(ok, jnp.clip(share, 0.0, 1.0), 1.0)
    return jnp.sum(jnp.where(keep, share, 0.0))


def accumulate(blocks, factors, alpha, axes=None):
    """:class:`Sums` over ``blocks`` (a pytree with a leading block axis; ``factors(*block) -> (F, Fh, keep)``).

    Passes: ``F^T 1`` (and, with anisotropy, ``q = F F^T 1`` then ``(q^-a F)^T 1``),
    then ``A = sum_i F_i F_i^T / d_i`` with ``d_i = F_i . (F^T 1)``. ``axes``:
    inside ``shard_map``, each pass's sums are added over these mesh axes.
    """
    alpha = jnp.asarray(alpha)

    def ones_sums(*b):
        F, Fh, keep = factors(*b)
        return jnp.sum(F, 0), jnp.sum(Fh, 0)

    F0, Fh0, _ = jax.eval_shape(factors, *jax.tree.map(lambda a: a[0], blocks))
    zero = (jnp.zeros(F0.shape[1], F0.dtype), jnp.zeros(Fh0.shape[1], F0.dtype))
    s0 = _scan(ones_sums, zero, blocks, axes)

    def weights(F, Fh, keep):
        return anisotropy(F, s0[0], keep, alpha), anisotropy(Fh, s0[1], keep, alpha)

    def weighted_sums(*b):
        F, Fh, keep = factors(*b)
        a, ah = weights(F, Fh, keep)
        return jnp.matmul(a, F, precision=HIGHEST), jnp.matmul(ah, Fh, precision=HIGHEST)

    s = jax.lax.cond(alpha == 0, lambda: s0, lambda: _scan(weighted_sums, zero, blocks, axes))

    def grams(*b):
        F, Fh, keep = factors(*b)
        a, ah = jax.lax.cond(alpha == 0, lambda: (keep.astype(F.dtype),) * 2, lambda: weights(F, Fh, keep))
        kept = keep.astype(F.dtype)
        return Sums(gram(F, a, s[0]), gram(Fh, ah, s[1]), missed_trace(F, a, s[0], keep), jnp.sum(kept))

    m, h = F0.shape[1], Fh0.shape[1]
    init = Sums(
        jnp.zeros((m, m), F0.dtype), jnp.zeros((h, h), F0.dtype), jnp.zeros((), F0.dtype), jnp.zeros((), F0.dtype)
    )
    return _scan(grams, init, blocks, axes)


def blocked(arrays, block):
    """Pad the leading axis of every array to a multiple of ``block`` and reshape to ``[nb, block, ...]``."""
    n = jax.tree.leaves(arrays)[0].shape[0]
    block = max(1, min(block, n))
    pad = (-n) % block
    return jax.tree.map(
        lambda a: jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape((-1, block) + a.shape[1:]), arrays
    )

"""The checks and coercion of ``layerwise``'s inputs, and its row operations (normalisation, pooling).

Hidden states, masks and settings are checked in Python before anything is
traced; rows are normalised and tokens pooled before any entropy is computed.

Shapes: ``L`` layers, ``B`` sequences (prompts), ``T`` tokens, ``D`` features,
``N`` points without a token axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse.solvers import SLQ

GRANULARITIES = ("tokens", "prompt", "dataset")
POOLS = ("mean", "last", "first")
NORMALIZE = (None, "l2", "center", "center+l2")


def _is_tracer(x):
    return isinstance(x, jax.core.Tracer)


def as_array(x, name="hidden_states"):
    """A JAX array (tracers kept) or numpy array from numpy, JAX, torch or lists."""
    if isinstance(x, jax.Array):
        return x
    if type(x).__module__.split(".")[0] == "torch":
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:  # bfloat16/float16 have no numpy form
            x = x.float()
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as err:
        raise TypeError(f"{name}: cannot read {type(x).__name__} as an array") from err


def _float(x):
    return x if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize >= 4 else x.astype(jnp.float32)


class StackedLayers(Sequence):
    """The layers of a stack ``[L, ...]``, sliced only when one is read (a JAX array's slice is a copy)."""

    def __init__(self, stack):
        self.stack = stack

    def __len__(self):
        return self.stack.shape[0]

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):  # a JAX array would clamp the index
            raise IndexError(f"layer {i} of {len(self)}")
        return self.stack[i]

    def __iter__(self):
        return (self.stack[i] for i in range(len(self)))


def layer_shape(layers, i: int) -> tuple:
    """The shape of layer ``i`` of :func:`as_layers`' result, without slicing a stack."""
    return tuple(layers.stack.shape[1:]) if isinstance(layers, StackedLayers) else tuple(layers[i].shape)


def as_layers(hidden_states):
    """``(layers, token_axis)``: the layers, each ``[B, T, D]`` (or ``[N, D]``).

    A list of arrays for a sequence, a :class:`StackedLayers` for a stack (read
    the shapes with :func:`layer_shape`). Raises ValueError/TypeError naming
    ``hidden_states`` for ranks other than 3/4 (stack) or 2/3 (sequence
    elements) and for layers of different lengths.
    """
    if isinstance(hidden_states, (list, tuple)):
        if len(hidden_states) == 0:
            raise ValueError("hidden_states: an empty sequence of layers")
        layers = [as_array(h) for h in hidden_states]
        ranks = {h.ndim for h in layers}
        if len(ranks) != 1 or ranks.pop() not in (2, 3):
            raise ValueError(
                "hidden_states: a sequence needs layers all [B, T, D] or all [N, D], got shapes "
                f"{[tuple(h.shape) for h in layers]}"
            )
        lead = {tuple(h.shape[:-1]) for h in layers}
        if len(lead) != 1:
            raise ValueError(
                "hidden_states: layers of different lengths (token counts) in one stack: "
                f"{[tuple(h.shape) for h in layers]}; every layer must hold the same points"
            )
        dtypes = [h.dtype for h in layers]
    else:
        h = as_array(hidden_states)
        if h.ndim not in (3, 4):
            raise ValueError(
                f"hidden_states must be [L, B, T, D] or [L, N, D] (rank 4 or 3), got shape {tuple(h.shape)}"
            )
        layers, dtypes = StackedLayers(h), [h.dtype]
    for dtype in dtypes:
        if not (np.issubdtype(dtype, np.number) or dtype == jnp.bfloat16) or np.issubdtype(dtype, np.complexfloating):
            raise TypeError(f"hidden_states must hold real numbers, got dtype {dtype}")
    return layers, len(layer_shape(layers, 0)) == 3


def check_mask(mask, shape):
    """A bool mask of ``shape`` (numpy if concrete), or None. Accepts bool or 0/1."""
    if mask is None:
        return None
    m = as_array(mask, "mask")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask must have shape {tuple(shape)} ([B, T] or [N]), got {tuple(m.shape)}")
    if _is_tracer(m):
        return m != 0 if m.dtype != jnp.bool_ else m
    m = np.asarray(m)
    if m.dtype != np.bool_:
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("mask must be bool or 0/1")
        m = m != 0
    return m


def _check_settings(granularity, pool, normalize, sigma, t, alpha, base, solver, key):
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    for name, v, ok in (
        ("sigma", sigma, lambda v: v > 0),
        ("t", t, lambda v: v > 0),
        ("alpha", alpha, lambda v: 0 <= v <= 1),
        ("base", base, lambda v: v > 0 and v != 1),
    ):
        if isinstance(v, str) or _is_tracer(v):
            continue
        a = np.asarray(v)
        if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
            raise TypeError(f"{name} must be a number, got {v!r}")
        if not np.all(np.isfinite(a)) or not np.all(ok(a)):
            raise ValueError(f"{name} out of range: {v!r}")
    if isinstance(solver, SLQ) and key is None:
        raise ValueError("solver=SLQ(...) needs key= (a jax.random key or an integer seed)")


def _as_key(key):
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    if jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def normalize_rows(pts, m, how):
    """Rows of ``pts`` ``[..., n, D]`` centred (on the kept rows of ``m`` ``[..., n]``) and/or scaled to unit norm."""
    if how is None:
        return pts
    if "center" in how:
        if m is None:
            mu = pts.mean(-2, keepdims=True)
        else:
            w = m[..., None].astype(pts.dtype)
            mu = (pts * w).sum(-2, keepdims=True) / jnp.maximum(w.sum(-2, keepdims=True), 1)
        pts = pts - mu
    if "l2" in how:
        # Zero rows stay 0; a non-finite row stays non-finite (its set's value is then NaN).
        sq = (pts * pts).sum(-1, keepdims=True)
        pts = jnp.where(sq == 0, 0, pts / jnp.sqrt(jnp.where(sq == 0, 1, sq)))
    if m is not None:
        pts = jnp.where(m[..., None], pts, 0)
    return pts


def pool_tokens(x, m, pool):
    """One vector per sequence: ``x`` ``[..., B, T, D]``, ``m`` ``[B, T]`` or None -> ``[..., B, D]``."""
    T = x.shape[-2]
    if m is None:
        return {"mean": lambda: x.mean(-2), "last": lambda: x[..., -1, :], "first": lambda: x[..., 0, :]}[pool]()
    if pool == "mean":
        w = m[..., None].astype(x.dtype)
        return (jnp.where(m[..., None], x, 0) * w).sum(-2) / w.sum(-2)
    idx = jnp.argmax(m, -1) if pool == "first" else T - 1 - jnp.argmax(m[:, ::-1], -1)  # [B]
    return jnp.take_along_axis(x, jnp.broadcast_to(idx[:, None, None], x.shape[:-2] + (1, x.shape[-1])), -2)[..., 0, :]

"""DSE of every layer of a stack of hidden states, in one compiled program.

Shapes: ``L`` layers, ``B`` sequences (prompts), ``T`` tokens, ``D`` features,
``N`` points without a token axis. Values are in units of ``base`` (bits).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse._checks import may_be_indefinite, parse_bandwidth
from jaxdse.entropy.diffusion_entropy import exact_value
from jaxdse.entropy.estimators import dse_estimate, exact_operator
from jaxdse.layers.inputs import (
    _as_key,
    _check_settings,
    _float,
    _is_tracer,
    as_array,
    as_layers,
    check_mask,
    layer_shape,
    normalize_rows,
    pool_tokens,
)
from jaxdse.mi.estimators import dsmi_terms
from jaxdse.solvers import SLQ, Exact, get_memory_budget


class LayerProfile(NamedTuple):
    """Per-layer DSE (a pytree).

    Attributes:
      value: DSE, ``[L]`` (``"tokens"``, ``"dataset"``) or ``[L, B]`` (``"prompt"``).
      stderr: its standard error (0 for the exact solver), shaped as ``value``.
      t: the diffusion time of each value.
      count: points in each set, shaped as ``value``.
      normalized: ``value / log_base(count)`` in [0, 1] (NaN below 2 points).
      depth: ``layer / (L - 1)``, ``[L]`` (0 for a single layer).
      mi: per-layer ``DSMI(Z; Y)`` ``[L]`` when labels are given, else None.
    """

    value: jax.Array
    stderr: jax.Array
    t: jax.Array
    count: jax.Array  # type: ignore[assignment]  # a field, in place of tuple.count
    normalized: jax.Array
    depth: jax.Array
    mi: jax.Array | None = None


# ---------------------------------------------------------------- compiled core


class _Config(NamedTuple):
    granularity: str
    pool: str
    normalize: str | None
    solver: object
    sigma: object  # a rule string, or None when numeric (then traced)
    t_auto: bool
    layer_batch: int  # layers at once: >= L means vmap
    prompt_batch: int
    labelled: bool
    mi_options: tuple
    shape: tuple  # (B, T): a stack [L, N, D] is read as [L, 1, N, D] inside the program
    staged: bool = False  # exact: every layer's operator first, then all their eigenvalues


def _map(f, xs, batch, n):
    if batch >= n:
        return jax.vmap(f)(*xs)
    return jax.lax.map(lambda a: f(*a), xs, batch_size=max(1, batch) if batch > 1 else None)


@partial(jax.jit, static_argnames=("cfg",))
def _core(x, mask, idx, labels, keys, num, *, cfg):
    """``x`` ``[L, B, T, D]`` (or ``[L, N, D]``), ``mask`` ``[B, T]`` or None -> (Estimate fields, count, mi)."""
    (L, D), (B, T) = (x.shape[0], x.shape[-1]), cfg.shape
    x = x.reshape(L, B, T, D)  # inside the program: free (outside, eagerly, a copy of the whole stack)
    sigma = cfg.sigma if cfg.sigma is not None else num["sigma"]
    t = "auto" if cfg.t_auto else num["t"]
    settings = dict(sigma=sigma, t=t, alpha=num["alpha"], base=num["base"], solver=cfg.solver)

    def est(pts, m, k):
        e = dse_estimate(pts, mask=m, key=k, **settings)
        return e.value, e.stderr, e.t

    # Each layer's points are formed (pooled, normalised) inside the map: a
    # normalised copy of the whole stack would double its memory and cost a
    # pass over it (L = 25, n = 800, d = 4096: 8 ms a layer).
    if cfg.granularity == "prompt":
        # ``idx`` [b, size]: a group of prompts, by flat token position (kept
        # tokens first), gathered layer by layer; ``mask`` is then the group's.
        nb, size = (B, T) if idx is None else idx.shape

        def layer(xl, ks):  # xl [B, T, D], ks [nb]: one key per prompt
            xl = xl if idx is None else xl.reshape(B * T, D)[idx]
            pts = normalize_rows(xl, mask, cfg.normalize)
            if mask is None:
                return _map(lambda a, kk: est(a, None, kk), (pts, ks), cfg.prompt_batch, nb)
            return _map(est, (pts, mask, ks), cfg.prompt_batch, nb)

        out = _map(layer, (x, keys), cfg.layer_batch, L)
        count = jnp.broadcast_to(size if mask is None else mask.sum(-1), (L, nb))
        return out, count, None
    if cfg.granularity == "tokens":
        m = None if mask is None else mask.reshape(B * T)
        n = B * T if m is None else m.sum()
    else:
        m, n = None, B
    opts = dict(cfg.mi_options)

    if cfg.granularity == "tokens":
        # Mapped as [L, B T, D]: a layer [B, T, D] reshaped inside the map was
        # copied (3.5 ms a layer at n = 800, d = 4096).
        x = x.reshape(L, B * T, D)

    def points(xl):  # xl [B T, D] (tokens) or [B, T, D]
        pts = xl if cfg.granularity == "tokens" else pool_tokens(xl, mask, cfg.pool)
        return normalize_rows(pts, m, cfg.normalize)

    def mi_of(pts, k):
        if not cfg.labelled:
            return None
        rows = pts if idx is None else pts[idx]
        return dsmi_terms(rows, labels, key=jax.random.fold_in(k, 1), **settings, **opts).value

    if cfg.staged:
        # Every layer's operator first, then all their eigenvalues: LAPACK's
        # reduction right after XLA's multi-threaded products ran slower, their
        # threads competing for the CPU's cores (n = 800, d = 4096: 38 -> 30 ms a
        # layer; the same eigenvalues).
        def build(xl, k):
            pts = points(xl)
            return exact_operator(pts, mask=m, **settings), mi_of(pts, k)

        parts, mi = _map(build, (x, keys), 1, L)
        eigensolver = cfg.solver.eigensolver
        e = jax.vmap(lambda *p: exact_value(*p, settings["t"], settings["base"], eigensolver))(*parts)
        return (e.value, e.stderr, jnp.broadcast_to(jnp.asarray(t, e.value.dtype), (L,))), jnp.broadcast_to(n, (L,)), mi

    def layer(xl, k):
        pts = points(xl)
        return est(pts, m, k), mi_of(pts, k)

    out, mi = _map(layer, (x, keys), cfg.layer_batch, L)
    return out, jnp.broadcast_to(n, (L,)), mi


# ---------------------------------------------------------------- public


def _labels(labels, granularity, token_axis, shape, mask, mi_options):
    """``(labels, idx, options)`` for the core: class indices, the kept flat rows (tokens) and static sizes."""
    if granularity == "prompt":
        raise ValueError("labels: per-layer DSMI needs granularity 'tokens' or 'dataset', not 'prompt'")
    B, T = shape
    y = as_array(labels, "labels")
    want = (B,) if granularity == "dataset" else ((B, T) if token_axis else (T,))
    if tuple(y.shape[: len(want)]) != want or y.ndim != len(want):
        raise ValueError(f"labels must have shape {want} for granularity {granularity!r}, got {tuple(y.shape)}")
    y = y.reshape(-1)
    idx = None
    if granularity == "tokens" and mask is not None:
        if _is_tracer(mask):
            raise ValueError("labels with a traced mask: pass a concrete mask (the kept rows set the class sizes)")
        keep = np.flatnonzero(np.asarray(mask).reshape(-1))
        idx = jnp.asarray(keep)
        y = y[keep]
    opts = dict(mi_options or {})
    if not _is_tracer(y):
        classes, y = np.unique(np.asarray(y), return_inverse=True)
        counts = np.bincount(y)
        opts.setdefault("num_classes", len(classes))
        opts.setdefault("max_class_size", int(counts.max()))
        y = jnp.asarray(y.astype(np.int32))
    return y, idx, tuple(sorted(opts.items()))


# On the CPU, the bytes of n x n arrays of the prompts solved together.
CPU_PROMPT_BYTES = 4 << 20


def _plan(granularity, L, B, T, dtype, solver):
    """Layers (and prompts) at once: elsewhere than on the CPU, as many as fit ~3 n x n arrays each in the budget."""
    budget = get_memory_budget(getattr(solver, "memory_budget", None))
    item = jnp.dtype(dtype).itemsize * 3
    cpu = jax.default_backend() == "cpu"
    if granularity == "prompt":
        per_prompt = T * T * item
        if cpu:
            # One layer at a time, and prompts in batches whose n x n arrays stay
            # within the caches: all 25 x 64 prompts of <= 128 tokens at once took
            # 1.5 s, one layer and 16 to 64 prompts at a time 0.9 to 1.0 s.
            return 1, int(max(1, min(B, CPU_PROMPT_BYTES // per_prompt)))
        prompt_batch = max(1, budget // per_prompt)
        layer_batch = budget // (per_prompt * B) if prompt_batch >= B else 1
        return int(layer_batch), int(prompt_batch)
    if cpu:
        # One layer at a time: the CPU's eigensolver takes one matrix per call
        # anyway, and one layer's products fill the cores (L = 25, n = 800:
        # 0.42 s against 0.47 s for all layers at once at d = 768, 0.90 against
        # 0.99 at d = 4096).
        return 1, 1
    n = B * T if granularity == "tokens" else B
    return int(budget // (n * n * item)), 1


def _staged(granularity, L, n, dtype, solver, t_auto) -> bool:
    """Whether the exact solver builds every layer's operator before their eigenvalues
    (on the CPU, when the ``L`` operators fit the memory budget beside one layer's work)."""
    if granularity == "prompt" or t_auto or not isinstance(solver, Exact) or jax.default_backend() != "cpu":
        return False
    return (L + 4) * n * n * jnp.dtype(dtype).itemsize <= get_memory_budget(solver.memory_budget)


def layerwise(
    hidden_states, *, mask=None, granularity="tokens", pool="mean", normalize=None, labels=None, sigma=10.0, t=1.0,
    alpha=0.0, base=2.0, solver=None, key=None, mi_options=None,
) -> LayerProfile:  # fmt: skip
    """DSE of the hidden states of every layer (units of ``base``: bits by default).

    Args:
      hidden_states: ``[L, B, T, D]``, a sequence of ``L`` arrays ``[B, T, D]``
        (Hugging Face's ``output_hidden_states``; numpy, JAX or torch), or
        ``[L, N, D]`` / a sequence of ``[N, D]`` (points without a token axis).
        Layers of different widths ``D`` are accepted as a sequence.
      mask: ``[B, T]`` (or ``[N]``) attention mask, bool or 0/1; padded tokens
        count nowhere.
      granularity: ``"tokens"`` (all kept tokens of a layer form one set ->
        ``[L]``), ``"prompt"`` (each sequence's kept tokens -> ``[L, B]``) or
        ``"dataset"`` (one vector per sequence, by ``pool`` -> ``[L]``).
      pool: ``"mean"`` of the kept tokens, ``"last"`` or ``"first"`` kept token.
      normalize: None, ``"l2"`` (unit rows), ``"center"`` or ``"center+l2"``,
        applied to the points of each set (the pooled vectors for
        ``"dataset"``), centring on the kept rows.
      labels: ``[B]`` (``"dataset"``), ``[B, T]`` or ``[N]`` (``"tokens"``):
        adds per-layer ``DSMI(Z; Y)`` (:func:`dsmi_terms`, its default
        ``"subsample"`` estimator, which needs ``key``, unless
        ``mi_options={"estimator": "plugin"}``).
      sigma, t, alpha, base, solver, key: as in :func:`jaxdse.dse` (``key`` is
        needed for :class:`SLQ`; layer ``l`` uses ``split(key, L)[l]``).
      mi_options: dict of :class:`MIOptions` settings for ``labels``.

    Returns:
      A :class:`LayerProfile`.

    Raises:
      ValueError/TypeError naming the argument (before tracing) for hidden
      states of the wrong rank, layers of different lengths, a mask or labels
      of the wrong shape, unknown granularity/pool/normalize, or a prompt
      (``"prompt"``) or sequence (``"dataset"``) keeping too few tokens. Under
      ``jit`` such a prompt gives NaN for itself only.

    One compiled program per stack of equal-width layers: on the CPU the
    layers go through ``lax.map`` (one at a time), elsewhere through ``vmap``
    when ``L`` dense ``n x n`` problems fit :func:`get_memory_budget`, else
    ``lax.map``. Works under ``jit``, ``vmap`` and ``grad`` (w.r.t. the hidden
    states).

    >>> import numpy as np
    >>> h = np.random.default_rng(0).normal(size=(3, 2, 8, 4))  # [L, B, T, D]
    >>> mask = np.ones((2, 8), bool); mask[1, 5:] = False
    >>> layerwise(h, mask=mask, sigma=1.0).value.shape
    (3,)
    """
    _check_settings(granularity, pool, normalize, sigma, t, alpha, base, solver, key)
    solver = Exact() if solver is None else solver
    if isinstance(solver, str):
        solver = {"exact": Exact(), "eigh": Exact(), "slq": SLQ()}.get(solver, solver)
    layers, token_axis = as_layers(hidden_states)
    L = len(layers)
    if token_axis:
        B, T = layer_shape(layers, 0)[:2]
    else:
        if granularity == "prompt":
            raise ValueError("granularity='prompt' needs a token axis: hidden_states [L, B, T, D]")
        granularity = "tokens"  # each row is one point: "dataset" and "tokens" agree
        B, T = 1, layer_shape(layers, 0)[0]
    mask = check_mask(mask, (B, T) if token_axis else (B * T,))
    if mask is not None:
        mask = mask.reshape(B, T)
        if not _is_tracer(mask):
            counts = mask.sum(-1)
            if granularity == "prompt" and counts.min() < 2:
                i = int(np.argmin(counts))
                raise ValueError(f"mask: prompt {i} keeps {int(counts[i])} tokens; granularity 'prompt' needs >= 2")
            if granularity == "dataset" and counts.min() < 1:
                raise ValueError(f"mask: sequence {int(np.argmin(counts))} keeps no tokens; nothing to pool")
            if granularity == "dataset" and B < 2:
                raise ValueError("hidden_states: granularity 'dataset' needs >= 2 sequences")
            if granularity == "tokens" and counts.sum() < 2:
                raise ValueError(f"mask keeps {int(counts.sum())} tokens; DSE needs >= 2")
            # Kept in numpy: under an outer jit, jnp.asarray would make it a tracer, and the
            # class sizes (labels) and the grouping of prompts by length need its values.
    y = idx = None
    opts = ()
    if labels is not None:
        y, idx, opts = _labels(labels, granularity, token_axis, (B, T), mask, mi_options)
        if key is None and dict(opts).get("estimator", "subsample") == "subsample":
            raise ValueError(
                "labels: DSMI's 'subsample' estimator needs key=; or pass mi_options={'estimator': 'plugin'}"
            )
    keys = jax.random.split(_as_key(key), L)
    num = {
        "sigma": None if isinstance(sigma, str) else jnp.asarray(sigma, jnp.float32),
        "t": None if isinstance(t, str) else jnp.asarray(t, jnp.float32),
        "alpha": jnp.asarray(alpha, jnp.float32),
        "base": jnp.asarray(base, jnp.float32),
    }
    groups: dict[int, list[int]] = {}
    for i in range(L):
        groups.setdefault(int(layer_shape(layers, i)[-1]), []).append(i)
    parts, order = [], []
    for members in groups.values():
        if len(groups) == 1 and not isinstance(hidden_states, (list, tuple)):
            x = _float(jnp.asarray(as_array(hidden_states)))  # the stack as given
        else:
            x = _float(jnp.stack([jnp.asarray(layers[i]) for i in members]))
        lb, pb = _plan(granularity, len(members), B, T, x.dtype, solver)
        cfg = _Config(
            granularity,
            pool,
            normalize,
            solver,
            sigma if isinstance(sigma, str) else None,
            isinstance(t, str),
            lb,
            pb,
            labels is not None,
            opts,
            (B, T),
            _staged(
                granularity, len(members), B * T if granularity == "tokens" else B, x.dtype, solver, isinstance(t, str)
            ),
        )
        layer_keys = keys[np.asarray(members)]
        if granularity == "prompt":
            parts.append(_prompts(x, mask, layer_keys, num, cfg, solver))
        else:
            parts.append(_core(x, mask, idx, y, layer_keys, num, cfg=cfg))
        order += members
    if len(parts) == 1:
        ((value, stderr, tt), count, mi) = parts[0]
    else:
        inv = np.argsort(order)
        cat = lambda *a: None if a[0] is None else jnp.concatenate(a)[inv]  # noqa: E731
        ((value, stderr, tt), count, mi) = jax.tree.map(cat, *parts, is_leaf=lambda a: a is None)
    return profile(value, stderr, tt, count, base, mi)


def _prompts(x, mask, keys, num, cfg, solver):
    """Prompt granularity: prompts grouped by length, each group solved at its own padded size.

    ``x`` ``[L, B, T, D]``; prompt ``i`` of layer ``l`` uses ``split(keys[l], B)[i]``.
    With a concrete mask, each prompt's kept tokens are moved to the front and
    the prompts are grouped by the power of two (at most ``T``) that holds them:
    an exact solve costs ``O(T^3)``, and prompts of mixed lengths were all solved
    at the longest. The values are those of the kept tokens either way. The
    tokens are gathered inside the program, one layer at a time, never as a
    reordered copy of the whole stack.
    """
    L = x.shape[0]
    B, T = cfg.shape
    prompt_keys = jax.vmap(lambda k: jax.random.split(k, B))(keys)  # [L, B]
    if mask is None or _is_tracer(mask):
        return _core(x, mask, None, None, prompt_keys, num, cfg=cfg)
    m = np.asarray(mask, bool)
    counts = m.sum(-1)
    sizes = 2 ** np.ceil(np.log2(np.maximum(counts, 2))).astype(int)
    # SLQ needs at least as many rows as its Lanczos steps (padding rows are masked out).
    if isinstance(solver, SLQ):
        rule = parse_bandwidth(cfg.sigma).rule if cfg.sigma is not None else "fixed"
        sizes = np.maximum(sizes, solver.matvecs_for(may_be_indefinite(rule)))
    sizes = np.minimum(T, sizes)
    parts, order = [], []
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        # Kept token positions first (in order), then padding that repeats the first kept token.
        pos = np.argsort(~m[members], axis=-1, kind="stable")[:, :size]
        keep = np.arange(size)[None, :] < counts[members][:, None]
        pos = np.where(keep, pos, pos[:, :1])
        flat = jnp.asarray(members[:, None] * T + pos)  # gathered inside the program, a layer at a time
        lb, pb = _plan("prompt", L, len(members), int(size), x.dtype, solver)
        sub = cfg._replace(layer_batch=lb, prompt_batch=pb)
        parts.append(_core(x, jnp.asarray(keep), flat, None, prompt_keys[:, members], num, cfg=sub))
        order.append(members)
    if len(parts) == 1:
        ((out, count, mi),) = parts
        return out, count, mi
    inv = np.argsort(np.concatenate(order))
    out = tuple(jnp.concatenate([p[0][j] for p in parts], axis=1)[:, inv] for j in range(3))
    count = jnp.concatenate([p[1] for p in parts], axis=1)[:, inv]
    return out, count, None


def profile(value, stderr, t, count, base, mi=None) -> LayerProfile:
    """A :class:`LayerProfile` from per-layer values (``count`` shaped as ``value``'s leading axes)."""
    L = value.shape[0]
    c = jnp.reshape(count, count.shape + (1,) * (value.ndim - count.ndim)).astype(value.dtype)
    log_n = jnp.log(jnp.where(c >= 2, c, 2)) / jnp.log(jnp.asarray(base, value.dtype))
    normalized = jnp.where(c >= 2, value / log_n, jnp.nan)
    depth = jnp.arange(L, dtype=value.dtype) / max(L - 1, 1)
    return LayerProfile(value, stderr, t, jnp.asarray(count), normalized, depth, mi)

"""DSE and DSMI of data that arrives in batches, with the Nystrom solver.

``batches`` is a callable returning a fresh iterator of row batches ``[b, d]``
(numpy, JAX or torch arrays, or lists; for DSMI ``(rows, labels)`` pairs). The
rows are read three times (four with ``alpha != 0``):

1. count and width checks, the shift and power-of-two scale of
   :func:`jaxdse.affinity.standardise`, and a reservoir of the rows of highest
   :func:`jaxdse.entropy.nystrom.row_scores` (the same uniform draw as the one-shot
   solver: the same landmarks and median sample whatever the batching);
2. ``F^T 1`` per group (with anisotropy, a further pass for ``(q^-a F)^T 1``);
3. ``F^T D^-1 F`` per group, by a jitted update per block of rows.

Memory ``O(groups m^2 + block (d + m))``. The result equals the one-shot
``dse(x, solver=Nystrom(...), key=key)`` on the concatenated rows up to float
rounding (sums in another order).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse._checks import parse_bandwidth
from jaxdse.entropy.nystrom import (
    Prepared,
    choose_landmarks,
    entropy_for,
    entropy_from_sums,
    factor_maps,
    factor_rows,
    row_scores,
    sample_scales,
    warn_if_coarse,
)
from jaxdse.entropy.passes import Sums, anisotropy, gram, missed_trace
from jaxdse.kernels.points import _exponent_of_max, _power_of_two_scale
from jaxdse.solvers.objects import MEDIAN_SAMPLE, Estimate, Nystrom, as_solver


def _rows(batch, name, width):
    x = _checks.as_array(batch, name)
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim != 2:
        raise ValueError(f"{name}: every batch must be a 2-D array [b, d], got shape {tuple(x.shape)}")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{name}: batches of different widths ({width} and {x.shape[1]})")
    if x.shape[0] and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name}: a batch holds non-finite values")
    return jnp.asarray(x, _checks.float_dtype() if not jnp.issubdtype(x.dtype, jnp.floating) else x.dtype)


def _iterate(batches, name, labelled):
    if not callable(batches):
        raise TypeError(
            f"{name} must be a callable returning a fresh iterator of batches, got {type(batches).__name__}"
        )
    it = batches()
    if it is None or not hasattr(iter(it), "__next__"):
        raise TypeError(f"{name}() must return an iterator of batches")
    for item in it:
        if labelled:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"{name}: every batch of stream_dsmi must be a (rows, labels) pair")
            yield item[0], np.asarray(item[1])
        else:
            yield item, None


class _Stats:
    """Pass 1: row count, width, sums, column ranges and the top-scored reservoir."""

    def __init__(self, key, size):
        self.key, self.size = key, size
        self.n, self.width, self.dtype = 0, None, None
        self.total = self.lo = self.hi = None
        self.res_rows = self.res_scores = None
        self.largest = 0
        self.labels = []

    def add(self, x, labels):
        b = x.shape[0]
        if labels is not None and labels.shape[:1] != (b,):
            raise ValueError(f"batches: labels of shape {labels.shape} for a batch of {b} rows")
        if b == 0:
            return
        self.width, self.dtype = x.shape[1], x.dtype
        self.largest = max(self.largest, b)
        tot, lo, hi = jnp.sum(x, 0), jnp.min(x, 0), jnp.max(x, 0)
        if self.total is None:
            self.total, self.lo, self.hi = tot, lo, hi
            self.res_rows, self.res_scores = x[:0], jnp.zeros(0, x.dtype)
        else:
            self.total, self.lo, self.hi = self.total + tot, jnp.minimum(self.lo, lo), jnp.maximum(self.hi, hi)
        scores = row_scores(self.key, self.n, b).astype(x.dtype)
        rows, sc = jnp.concatenate([self.res_rows, x]), jnp.concatenate([self.res_scores, scores])
        top = jax.lax.top_k(sc, min(self.size, sc.shape[0]))[1]
        self.res_rows, self.res_scores = rows[top], sc[top]
        if labels is not None:
            self.labels.append(labels)
        self.n += b


def _first_pass(batches, name, key, solver, labelled):
    stats = _Stats(jax.random.fold_in(key, 0), solver.sample_size)
    width = None
    for rows, labels in _iterate(batches, name, labelled):
        x = _rows(rows, name, width)
        width = x.shape[1]
        stats.add(x, labels)
    if stats.n == 0:
        raise ValueError(f"{name}: the iterator gave no rows")
    if stats.n < 2:
        raise ValueError(f"{name}: at least 2 rows are needed, got {stats.n}")
    return stats


def _standardiser(stats):
    """``f(x) = (x - shift) 2^-e`` with ``shift`` the mean and ``2^e`` about the largest centred coordinate."""
    shift = stats.total / stats.n
    spread = jnp.maximum(stats.hi - shift, shift - stats.lo)
    e = _exponent_of_max(spread)
    return (lambda x: _power_of_two_scale(x - shift, -e)), e, shift


# Each block of rows adds to every group in ``groups`` ``[g]`` (DSMI: the whole
# set and the block's class), from one factor computation. The state is
# donated: updated in place rather than copied at every block.
@partial(jax.jit, donate_argnums=(0,))
def _sum_step(state, prep, maps, x, keep, groups, alpha, s0):
    F, Fh = factor_rows(prep, maps, x, jnp.broadcast_to(prep.landmark_scales[0], keep.shape), keep)
    full, half = state
    for g in groups:
        if s0 is None:
            a, ah = keep.astype(F.dtype), keep.astype(F.dtype)
        else:
            a, ah = anisotropy(F, s0[0][g], keep, alpha), anisotropy(Fh, s0[1][g], keep, alpha)
        full, half = full.at[g].add(a @ F), half.at[g].add(ah @ Fh)
    return full, half


@partial(jax.jit, donate_argnums=(0,))
def _gram_step(state, prep, maps, x, keep, groups, alpha, s0, s):
    F, Fh = factor_rows(prep, maps, x, jnp.broadcast_to(prep.landmark_scales[0], keep.shape), keep)
    kept = keep.astype(F.dtype)
    for g in groups:
        a = jnp.where(alpha == 0, kept, anisotropy(F, s0[0][g], keep, alpha))
        ah = jnp.where(alpha == 0, kept, anisotropy(Fh, s0[1][g], keep, alpha))
        state = Sums(
            state.A.at[g].add(gram(F, a, s[0][g])),
            state.Ah.at[g].add(gram(Fh, ah, s[1][g])),
            state.missed.at[g].add(missed_trace(F, a, s[0][g], keep)),
            state.count.at[g].add(jnp.sum(kept)),
        )
    return state


class _Router:
    """Buffers rows per route and calls ``step(x [block, d], keep [block], route)`` on full blocks.

    The buffers are numpy arrays on the host: class subsets of a batch have a
    new length almost every time, and JAX compiles (and keeps) a program for
    each new shape of an eager gather, concatenation or slice; with 10 classes
    at n = 1,000,000 those programs took more memory than the sums (peak RSS
    3.7 GiB). Only full blocks, all of one shape, reach the device.
    """

    def __init__(self, num_routes, block, step):
        self.bufs = [[] for _ in range(num_routes)]
        self.sizes = [0] * num_routes
        self.block, self.step = block, step
        self.full = jnp.ones(block, bool)

    def add(self, x, route):
        self.bufs[route].append(x)
        self.sizes[route] += x.shape[0]
        while self.sizes[route] >= self.block:
            rows = np.concatenate(self.bufs[route])
            self.step(jnp.asarray(rows[: self.block]), self.full, route)
            rest = rows[self.block :]
            self.bufs[route], self.sizes[route] = [rest], rest.shape[0]

    def flush(self):
        for g, bufs in enumerate(self.bufs):
            if self.sizes[g]:
                rows = np.concatenate(bufs)
                k = rows.shape[0]
                padded = np.pad(rows, ((0, self.block - k), (0, 0)))
                self.step(jnp.asarray(padded), jnp.asarray(np.arange(self.block) < k), g)
            self.bufs[g], self.sizes[g] = [], 0


def _accumulate(batches, name, labelled, f, prep, maps, alpha, routes_of, targets, num_groups, block, stats):
    """Passes 2 and 3 (and the anisotropy pass): ``routes_of(labels, b)`` splits a batch into
    ``(route, rows or None)``; a block of route ``r`` adds to the groups ``targets[r]`` (a tuple)."""
    m, h = prep.landmarks.shape[0], maps[1].shape[0]
    dtype = prep.landmarks.dtype
    groups = [jnp.asarray(np.asarray(t, np.int32)) for t in targets]

    def run(step_fn, init):
        state = [init]
        count = [0]

        def step(x, keep, r):
            state[0] = step_fn(state[0], x, keep, groups[r])

        router = _Router(len(targets), block, step)
        width = stats.width
        for rows, labels in _iterate(batches, name, labelled):
            x = _rows(rows, name, width)
            if x.shape[0] == 0:
                continue
            y = np.asarray(f(x))
            for r, sel in routes_of(labels, x.shape[0]):
                router.add(y if sel is None else y[sel], r)
            count[0] += x.shape[0]
        router.flush()
        if count[0] != stats.n:
            raise ValueError(
                f"{name}: a later pass gave {count[0]} rows, the first {stats.n}; batches() must replay the same data"
            )
        return state[0]

    def zero():
        return jnp.zeros((num_groups, m), dtype), jnp.zeros((num_groups, h), dtype)

    s0 = run(lambda st, x, k, g: _sum_step(st, prep, maps, x, k, g, alpha, None), zero())
    s = s0
    if float(alpha) != 0:
        s = run(lambda st, x, k, g: _sum_step(st, prep, maps, x, k, g, alpha, s0), zero())
    init = Sums(
        jnp.zeros((num_groups, m, m), dtype),
        jnp.zeros((num_groups, h, h), dtype),
        jnp.zeros(num_groups, dtype),
        jnp.zeros(num_groups, dtype),
    )
    return run(lambda st, x, k, g: _gram_step(st, prep, maps, x, k, g, alpha, s0, s), init)


def _setup(batches, name, solver, sigma, key, labelled):
    solver = as_solver(Nystrom() if solver is None else solver)
    if not isinstance(solver, Nystrom):
        raise TypeError(f"solver must be jaxdse.Nystrom(...) for streaming, got {type(solver).__name__}")
    if solver.mesh is not None:
        raise ValueError("solver: streaming runs on one device; pass Nystrom(mesh=None)")
    bandwidth = parse_bandwidth(sigma)
    if key is None and solver.fixed_landmarks is None:
        raise ValueError("key is required (a jax.random key or an integer seed): it draws the landmarks")
    key = jax.random.key(0) if key is None else _checks.as_key(key)
    stats = _first_pass(batches, name, key, solver, labelled)
    entropy_for(bandwidth, solver, stats.n, key)  # the solver's checks (num_landmarks <= n, the knn rule)
    f, e, shift = _standardiser(stats)
    sample = f(stats.res_rows)
    scales = sample_scales(bandwidth, sample[:MEDIAN_SAMPLE], 1, sample.dtype, e)
    fixed = solver.fixed_landmarks
    if fixed is not None:
        if fixed.shape[1] != stats.width:
            raise ValueError(f"landmarks: an array of width {fixed.shape[1]} for batches of width d={stats.width}")
        L = f(jnp.asarray(fixed, sample.dtype))
    else:
        L, _ = choose_landmarks(solver, key, sample, jnp.ones(sample.shape[0], bool))
    if not bool(jnp.isfinite(scales[0])):
        raise ValueError("sigma='median': the median pairwise distance of the sample is 0; pass a number instead")
    prep = Prepared(sample[:0], scales, L, jnp.broadcast_to(scales[0], (L.shape[0],)))
    block = min(solver.block_size, 1 << max(int(stats.largest - 1).bit_length(), 1))
    return solver, stats, f, prep, factor_maps(prep), block


def _group_estimate(sums: Sums, g, t, base) -> Estimate:
    return entropy_from_sums(jax.tree.map(lambda a: a[g], sums), t, base)


def stream_dse(batches, *, solver=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, key=None) -> Estimate:
    """DSE of rows read in batches, with the Nystrom solver: an :class:`jaxdse.Estimate`.

    ``DSE = -sum_i p_i log_b p_i``, ``p_i = |lambda_i|^t / sum_j |lambda_j|^t``
    over the eigenvalues of the Nystrom diffusion operator (:mod:`jaxdse.entropy.nystrom`);
    ``stderr`` is its error indicator. Equal, up to float rounding, to
    ``dse_estimate(concatenated rows, solver=solver, key=key, ...)``.

    Args:
      batches: a callable returning a fresh iterator of ``[b, d]`` arrays (it is
        called three times, four with ``alpha != 0``).
      solver: :class:`jaxdse.Nystrom` (default ``Nystrom()``).
      sigma: a number, ``"sqrt_dim"`` or ``"median"`` (from the 2048 rows of the
        reservoir); ``"knn"`` raises a ValueError.
      t, alpha, base: as in :func:`jaxdse.dse`.
      key: draws the landmarks (required unless they are given as an array).

    Raises:
      TypeError/ValueError naming the argument: ``batches`` not callable, no
      rows, batches of different widths or not 2-D, a later pass with a
      different row count; ``num_landmarks`` above the number of rows, a
      landmark array of the wrong width.

    >>> import numpy as np
    >>> from jaxdse import Nystrom, dse
    >>> x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    >>> est = stream_dse(lambda: iter(np.array_split(x, 3)), solver=Nystrom(num_landmarks=64), sigma=4.0, key=0)
    >>> bool(abs(est.value - dse(x, solver=Nystrom(num_landmarks=64), sigma=4.0, key=0)) < 1e-3)
    True
    """
    t, alpha, base = _checks.check_numbers(t, alpha, base)
    solver, stats, f, prep, maps, block = _setup(batches, "batches", solver, sigma, key, False)
    sums = _accumulate(
        batches, "batches", False, f, prep, maps, alpha, lambda _, b: [(0, None)], [(0,)], 1, block, stats
    )
    est = _group_estimate(sums, 0, t, base)
    est = est._replace(t=jnp.broadcast_to(jnp.asarray(t, est.value.dtype), est.value.shape))
    warn_if_coarse(est, base)
    return est


def stream_dsmi(batches, *, solver=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, key=None) -> Estimate:
    """Plug-in DSMI of ``(rows, labels)`` batches with the Nystrom solver: an :class:`jaxdse.Estimate`.

    ``DSMI = sum_c p(c) [DSE(Z) - DSE(Z | Y = c)]`` (the ``estimator="plugin"``
    of :func:`jaxdse.dsmi`), every class restricted to the same landmarks and
    factor; equal up to float rounding to ``dsmi(z, y, solver=solver, key=key,
    estimator="plugin")`` on the concatenated batches. Labels are discrete
    (integers, text, booleans), one per row. A class of one row has
    conditional entropy 0, a single class overall gives 0. ``stderr`` combines
    the indicators of the terms in quadrature. Other arguments and errors as
    :func:`stream_dse`.
    """
    t, alpha, base = _checks.check_numbers(t, alpha, base)
    solver, stats, f, prep, maps, block = _setup(batches, "batches", solver, sigma, key, True)
    classes = np.unique(np.concatenate([np.asarray(lab).reshape(-1) for lab in stats.labels]))
    C = len(classes)

    def routes_of(labels, b):  # a block of class c adds to the whole set (group 0) and to group 1 + c
        codes = np.searchsorted(classes, np.asarray(labels).reshape(-1))
        return [(int(c), np.nonzero(codes == c)[0]) for c in np.unique(codes)]

    targets = [(0, 1 + c) for c in range(C)]
    sums = _accumulate(batches, "batches", True, f, prep, maps, alpha, routes_of, targets, C + 1, block, stats)
    total = _group_estimate(sums, 0, t, base)
    counts = np.asarray(sums.count[1:])
    w = jnp.asarray(np.where((counts > 0) & (counts < stats.n), counts / stats.n, 0.0), total.value.dtype)
    value, variance = jnp.zeros_like(total.value), jnp.zeros_like(total.value)
    for c in range(C):
        if counts[c] >= 2:
            est = _group_estimate(sums, 1 + c, t, base)
            value, variance = value + w[c] * (total.value - est.value), variance + w[c] ** 2 * est.stderr**2
        else:
            value = value + w[c] * total.value
    variance = variance + jnp.sum(w) ** 2 * total.stderr**2
    est = Estimate(value, jnp.sqrt(variance), jnp.broadcast_to(jnp.asarray(t, value.dtype), value.shape))
    warn_if_coarse(est, base)
    return est

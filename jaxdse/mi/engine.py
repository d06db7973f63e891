"""Mutual information from any masked entropy of row subsets.

``I(Z; Y) = H(Z) - sum_c p(c) H(Z | Y = c)`` with ``p(c) = n_c / n``. Two estimators:

* ``"subsample"`` (default, the reference package's): each class is compared
  with ``R`` random subsets of the same size, drawn uniformly without
  replacement, ``I = sum_c p(c) [mean_r H(Z*_{c,r}) - H(Z | c)]``. This cancels
  the growth of an entropy with the number of points. As in the reference,
  which reseeds its generator for every class, classes of equal size share their
  ``R`` comparison subsets (their draw depends on the key, the repetition and
  the size only); ``comparison="independent"`` draws fresh subsets per class.
* ``"plugin"``: the literal ``H(Z) - sum_c p(c) H(Z | c)``.

All subsets are padded to one static size ``max_class_size`` and evaluated as
masked entropies, batched with ``vmap``, so the whole estimate is one compiled
computation that can run inside a jitted step and be ``vmap``-ed over numeric
settings. Subsets that need no work (repeats of a shared comparison subset,
classes with fewer than two members, unused class slots) are moved to the end
and skipped: balanced classes take ``C + R`` subsets instead of ``C (1 + R)``.

The entropy is a :class:`SubsetEntropy`: its ``prepare`` runs once on the whole
set (e.g. resolving a bandwidth rule, so that every subset uses the kernel of
the whole set) and its call evaluates one padded subset of the prepared rows.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.mi.labels import prepare_labels
from jaxdse.solvers.memory import get_memory_budget
from jaxdse.solvers.objects import Estimate
from jaxdse.solvers.sharding import num_shards, replicate_input, sharded_vmap

ESTIMATORS = ("subsample", "plugin")
COMPARISONS = ("shared", "independent")


class SubsetEntropy(Protocol):
    """What :func:`mutual_information` needs of an entropy (hashable: it is static).

    ``prepare(z [n, d], params)`` returns a pytree of per-row arrays ``[n, ...]``
    computed once on the whole set; ``__call__(rows, mask [m], params, key)``
    returns the :class:`Estimate` of the entropy of the kept rows of a subset of
    them (``False`` rows ignored exactly); ``subset_bytes(m, dtype)`` is the peak
    memory of one subset of ``m`` rows. Optionally, with ``shares_pairwise``
    True, ``pairwise(rows)`` ``[n, n]`` and ``from_pairwise(block [m, m], rows,
    mask, params, key)`` let the engine compute pairwise quantities once and
    gather each subset's block.
    """

    def prepare(self, z, params): ...

    def __call__(self, rows, mask, params, key) -> Estimate: ...

    def subset_bytes(self, m: int, dtype) -> int: ...


@dataclasses.dataclass(frozen=True)
class MIOptions:
    """The estimator's settings, shared by every mutual-information function.

    Attributes:
      num_repetitions: random comparison subsets per class (``"subsample"``), >= 1.
      estimator: ``"subsample"`` (default) or ``"plugin"``.
      comparison: ``"shared"`` (default; classes of equal size share their
        comparison subsets, as in the reference) or ``"independent"``.
      num_clusters: bins or clusters for a continuous reference.
      num_classes, max_class_size: static class count and padded subset size;
        derived from concrete labels, required under ``jit`` with traced labels.
        A class larger than ``max_class_size`` or more distinct labels than
        ``num_classes`` makes the result NaN under ``jit``.
      reference_discrete: force reading ``y`` as classes (True) or as a
        continuous reference (False).
      batch_size: at most this many padded subsets are evaluated at once
        (default: all needed ones, lowered to fit the memory budget).
      mesh: a ``jax.sharding.Mesh``: each batch of subsets is split over it.
    """

    num_repetitions: int = 5
    estimator: str = "subsample"
    comparison: str = "shared"
    num_clusters: int = 10
    num_classes: int | None = None
    max_class_size: int | None = None
    reference_discrete: bool | None = None
    batch_size: int | None = None
    mesh: object = None

    def __post_init__(self):
        _checks.check_int(self.num_repetitions, "num_repetitions", minimum=1)
        _checks.check_choice(self.estimator, "estimator", ESTIMATORS)
        _checks.check_choice(self.comparison, "comparison", COMPARISONS)
        _checks.check_int(self.num_clusters, "num_clusters", minimum=2)
        for name in ("num_classes", "max_class_size", "batch_size"):
            if getattr(self, name) is not None:
                _checks.check_int(getattr(self, name), name, minimum=1)
        if self.reference_discrete not in (None, True, False):
            raise TypeError(f"reference_discrete must be None, True or False, got {self.reference_discrete!r}")
        _checks.check_mesh(self.mesh)


def as_options(options: dict) -> MIOptions:
    """:class:`MIOptions` from keyword arguments, naming an unknown one."""
    fields = {f.name for f in dataclasses.fields(MIOptions)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"unknown argument(s) {unknown}; the estimator's settings are {sorted(fields)}")
    return MIOptions(**options)


class MutualInformation(NamedTuple):
    """A mutual-information estimate with its per-class terms (every field an array).

    Attributes:
      value: the estimate (units of the entropy's base).
      stderr: its standard error from the entropy solver (0 for exact
        entropies); the randomness of the comparison subsets is not included.
      class_weights: ``[C]`` ``p(c) = n_c / n`` (0 for unused class slots).
      class_sizes: ``[C]`` ``n_c``.
      conditional_entropy: ``[C]`` ``H(Z | Y = c)``.
      comparison_entropy: ``[C, R]`` entropies of the random equal-size subsets
        (``"subsample"``), or ``[C, 0]`` for ``"plugin"``.
      total_entropy: ``H(Z)`` on all rows for ``"plugin"``; NaN for ``"subsample"``.
      t: the diffusion time as :func:`jaxdse.dsmi_terms` reports it (``t``'s
        shape; ``t="auto"``: the t it chose); ``None`` from the engine itself.

    An entropy with an array per subset (an array ``t``) puts its axes first in
    every field but the weights and sizes: ``value`` ``[*T]``,
    ``conditional_entropy`` ``[*T, C]``, ``comparison_entropy`` ``[*T, C, R]``.
    """

    value: jax.Array
    stderr: jax.Array
    class_weights: jax.Array
    class_sizes: jax.Array
    conditional_entropy: jax.Array
    comparison_entropy: jax.Array
    total_entropy: jax.Array
    t: jax.Array | None = None

    @property
    def per_class(self):
        """``[C]`` per-class contributions; they sum to ``value``."""
        if self.comparison_entropy.shape[-1] == 0:
            return self.class_weights * (self.total_entropy[..., None] - self.conditional_entropy)
        return self.class_weights * (jnp.mean(self.comparison_entropy, -1) - self.conditional_entropy)


def pad_size(max_count: int, n: int) -> int:
    """Round a largest class size up (to limit recompilation), never above ``n``.

    The step is the power of two nearest to ``max_count / 32`` (at least 8), so
    the padding adds at most about 3% more points (about 10% more eigenvalue work).
    """
    step = max(8, 1 << max(0, int(round(np.log2(max(max_count, 1) / 32)))))
    return int(min(n, -(-max_count // step) * step))


def static_sizes(labels, *, name: str = "y") -> tuple[int, int]:
    """``(num_classes, max_class_size)`` of concrete labels, as the estimate pads them.

    What a jitted function that receives the same labels traced needs as its
    static ``num_classes`` and ``max_class_size``.
    """
    labels = np.asarray(labels)
    codes, num_classes = prepare_labels(labels, labels.shape[0], reference_discrete=True, name=name)
    return num_classes, pad_size(int(np.bincount(codes).max()), labels.shape[0])


class Plan(NamedTuple):
    """Static sizes and choices of one estimate (decided on the host)."""

    num_classes: int
    max_class_size: int
    repetitions: int
    plugin: bool
    shared: bool
    chunk: int | None
    mesh: object
    share_pairwise: bool


def plan(entropy, labels, n: int, dtype, options: MIOptions, num_classes: int) -> Plan:
    """The static sizes for ``labels`` (concrete or traced), with clear errors."""
    max_class_size = options.max_class_size
    if max_class_size is None:
        if not _checks.is_concrete(labels):
            raise ValueError("max_class_size must be given (static) when the labels are traced under jit")
        max_class_size = pad_size(int(np.bincount(np.asarray(labels), minlength=num_classes).max()), n)
    _checks.check_int(max_class_size, "max_class_size", minimum=1, maximum=n)
    repetitions = options.num_repetitions if options.estimator == "subsample" else 0
    shared = options.comparison == "shared"
    num_subsets = num_classes * (1 + repetitions)
    evaluated = _subsets_evaluated(labels, num_classes, repetitions, shared)
    if evaluated is None:  # traced labels: as for balanced classes
        evaluated = num_classes + repetitions if shared and repetitions else num_subsets
    chunk = max(1, evaluated)
    budget = get_memory_budget(getattr(getattr(entropy, "solver", None), "memory_budget", None))
    if options.batch_size is not None:
        chunk = min(chunk, options.batch_size)
    else:
        devices = num_shards(options.mesh)
        fit = devices * max(1, budget // max(entropy.subset_bytes(max_class_size, dtype), 1))
        chunk = min(chunk, int(fit))
    # Subsets whose pairwise blocks together outweigh one n x n matrix (few
    # large classes, large d): compute it once and gather each subset's block.
    share_pairwise = (
        getattr(entropy, "shares_pairwise", False)
        and evaluated * max_class_size**2 > n * n
        and 2 * n * n * np.dtype(dtype).itemsize <= budget
    )
    return Plan(
        num_classes,
        int(max_class_size),
        repetitions,
        options.estimator == "plugin",
        shared,
        None if chunk >= num_subsets else chunk,
        options.mesh,
        share_pairwise,
    )


def _subsets_evaluated(labels, num_classes, repetitions, shared):
    """How many padded subsets the estimate evaluates (concrete labels), else None."""
    if not _checks.is_concrete(labels):
        return None
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    counts = counts[counts >= 2]
    per_class = len(np.unique(counts)) if shared else len(counts)
    return len(counts) + repetitions * per_class


def mutual_information(z, y, *, entropy: SubsetEntropy, params=(), key=None, **options) -> MutualInformation:
    """Mutual information ``I(Z; Y)`` from any :class:`SubsetEntropy`, with per-class terms.

    ``z`` ``[n, d]``; ``y`` a reference for the same rows (see
    :mod:`jaxdse.mi.labels`); ``params`` the entropy's numeric settings (a pytree,
    traced); ``key`` a ``jax.random`` key or an integer seed (required for the
    subsample estimator); ``options`` the fields of :class:`MIOptions`.
    """
    options = as_options(options)
    z = replicate_input(_checks.as_points(z, "z"), options.mesh)
    n = z.shape[0]
    if options.estimator == "subsample" and key is None:
        raise ValueError("key is required for estimator='subsample' (random comparison subsets): pass key=0")
    key = jax.random.key(0) if key is None else _checks.as_key(key)
    labels, num_classes = prepare_labels(
        y,
        n,
        num_clusters=options.num_clusters,
        reference_discrete=options.reference_discrete,
        key=key,
        num_classes=options.num_classes,
    )
    the_plan = plan(entropy, labels, n, z.dtype, options, num_classes)
    return _mutual_information(z, jnp.asarray(labels), key, params, entropy=entropy, plan=the_plan)


@partial(jax.jit, static_argnames=("entropy", "plan"))
def _mutual_information(z, labels, key, params, *, entropy, plan: Plan):
    n = z.shape[0]
    C, M, R = plan.num_classes, plan.max_class_size, plan.repetitions
    classes = jnp.arange(C, dtype=jnp.int32)
    counts = jnp.sum(labels[None, :] == classes[:, None], axis=1)
    # Each class's members first (stable order), padded with other rows.
    member_first = jax.vmap(lambda c: jnp.argsort(labels != c, stable=True)[:M])(classes)
    # The first class of each size: with shared comparison subsets, classes of
    # equal size have identical comparison subsets, evaluated once.
    first_of_size = jnp.argmax(counts[None, :] == counts[:, None], axis=1)
    key_subsets, key_entropy = jax.random.split(key)
    rep_keys = jax.random.split(key_subsets, max(R, 1))

    def describe(i):
        # Subset i = (class c, slot j): j = 0 is the class itself, j = r >= 1
        # its r-th comparison subset. Both keep the first n_c of M rows.
        c, j = i // (1 + R), i % (1 + R)
        mask = jnp.arange(M) < counts[c]
        if R == 0:
            return member_first[c], mask
        # M distinct rows drawn uniformly in random order: the top M of n
        # uniform scores (a partial sort, cheaper than a permutation for M << n).
        k = jax.random.fold_in(rep_keys[jnp.maximum(j - 1, 0)], counts[c] if plan.shared else c)
        drawn = jax.lax.top_k(jax.random.uniform(k, (n,)), M)[1]
        return jnp.where(j == 0, member_first[c], drawn), mask

    # Subsets worth evaluating: at least 2 members and, when shared, not a repeat.
    distinct = jnp.ones((C, 1 + R), bool)
    if plan.shared and R > 0:
        distinct = distinct.at[:, 1:].set((first_of_size == classes)[:, None])
    needed = (distinct & (counts >= 2)[:, None]).reshape(-1)
    rows = entropy.prepare(z, params)
    value, stderr = _evaluate_subsets(rows, describe, needed, params, entropy, key_entropy, plan)

    def by_class(h):  # [N, *T] -> [*T, C, 1 + R]
        return jnp.moveaxis(h.reshape((C, 1 + R) + h.shape[1:]), (0, 1), (-2, -1))

    entropies, variances = by_class(value), by_class(stderr**2)
    conditional = entropies[..., 0]
    comparison = entropies[..., first_of_size, 1:] if plan.shared else entropies[..., 1:]
    weights = counts / n
    informative = (counts < n) & (counts > 0)  # a class holding every sample carries no information
    w = jnp.where(informative, weights, 0.0)
    variance = jnp.sum(w**2 * variances[..., 0], axis=-1)
    if plan.plugin:
        total = entropy(rows, jnp.ones(n, bool), params, jax.random.fold_in(key_entropy, C * (1 + R)))
        value = jnp.sum(w * (total.value[..., None] - conditional), axis=-1)
        variance = variance + jnp.sum(w) ** 2 * total.stderr**2
        total = total.value
    else:
        total = jnp.full(conditional.shape[:-1], jnp.nan, conditional.dtype)
        value = jnp.sum(w * (jnp.mean(comparison, axis=-1) - conditional), axis=-1)
        # Each evaluated comparison subset serves every class of its size.
        owner = first_of_size if plan.shared else classes
        coef = jnp.zeros(C, w.dtype).at[owner].add(w) / R
        variance = variance + jnp.sum(coef[:, None] ** 2 * variances[..., 1:], axis=(-2, -1))
    # NaN, never a plausible number: labels that could not be placed or a class
    # larger than max_class_size. A needed entropy that is NaN (invalid
    # settings, non-finite data), or a NaN H(Z) for the plugin estimator, makes
    # the sums above NaN by itself (a weight of 0 included: 0 * NaN = NaN);
    # subsets not needed hold 0, not NaN.
    bad = jnp.any(labels < 0) | jnp.any(counts > M)
    value = jnp.where(bad, jnp.nan, value)
    stderr = jnp.where(bad, jnp.nan, jnp.sqrt(variance))
    return MutualInformation(value, stderr, weights, counts, conditional, comparison, total)


def _evaluate_subsets(rows, describe, needed, params, entropy, key, plan: Plan):
    """Estimates of the padded subsets ``describe(i) = (rows [M], mask [M])``, 0 where not ``needed``.

    The needed subsets are moved to the front and evaluated ``plan.chunk`` at a
    time (one ``vmap`` each, split over ``plan.mesh`` if given) in a
    ``lax.scan`` whose chunks past the last needed subset are skipped.
    """
    N = needed.shape[0]
    if plan.share_pairwise:
        block = entropy.pairwise(rows)

        def one(idx, m, k):
            sub = jax.tree.map(lambda a: a[idx], rows)
            return entropy.from_pairwise(block[idx[:, None], idx[None, :]], sub, m, params, k)

    else:

        def one(idx, m, k):
            return entropy(jax.tree.map(lambda a: a[idx], rows), m, params, k)

    def subset_entropy(i):
        idx, m = describe(i)
        # A subset with fewer than two members is not needed; give the solver
        # a valid two-row problem instead.
        m = m | (jnp.arange(m.shape[0]) < 2) & (jnp.sum(m) < 2)
        est = one(idx, m, jax.random.fold_in(key, i))
        return est.value, est.stderr

    batched = sharded_vmap(subset_entropy, plan.mesh)

    def keep_needed(flags, h):
        return tuple(jnp.where(flags.reshape(flags.shape + (1,) * (a.ndim - 1)), a, 0.0) for a in h)

    chunk = plan.chunk
    if chunk is None or chunk >= N:
        return keep_needed(needed, batched(jnp.arange(N)))
    num_chunks = -(-N // chunk)
    order = jnp.argsort(~needed, stable=True)
    order = jnp.concatenate([order, jnp.full(num_chunks * chunk - N, N, order.dtype)])
    num_needed = jnp.sum(needed)
    out = jax.eval_shape(batched, jnp.arange(chunk))

    def step(_, j):
        idx = jax.lax.dynamic_slice_in_dim(order, j * chunk, chunk)
        h = jax.lax.cond(
            j * chunk < num_needed,
            lambda: batched(jnp.minimum(idx, N - 1)),
            lambda: tuple(jnp.zeros(o.shape, o.dtype) for o in out),
        )
        return None, h

    _, h = jax.lax.scan(step, None, jnp.arange(num_chunks))
    h = tuple(a.reshape((-1,) + a.shape[2:]) for a in h)
    kept = keep_needed(jnp.arange(h[0].shape[0]) < num_needed, h)
    return tuple(jnp.zeros((N,) + a.shape[1:], a.dtype).at[order].set(a, mode="drop") for a in kept)

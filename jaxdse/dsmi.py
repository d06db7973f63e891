"""Entropy -> mutual information with a reference (SPEC section 2).

``DSMI(Z; Y) = DSE(Z) - sum_c p(c) DSE(Z | Y = c)`` with ``p(c) = n_c / n``.

Two estimators:

* ``"subsample"`` (default, the reference package's): each class is compared
  with ``R`` random subsets of the same size, drawn uniformly without
  replacement, ``DSMI = sum_c p(c) [mean_r DSE(Z*_{c,r}) - DSE(Z | c)]``. This
  cancels the growth of DSE with the number of points. As in the reference,
  which reseeds its generator for every class, classes of equal size share
  their ``R`` comparison subsets (their random draw depends on the key, the
  repetition and the size only); ``comparison="independent"`` draws fresh
  subsets for every class.
* ``"plugin"``: the literal ``DSE(Z) - sum_c p(c) DSE(Z | c)``.

All class subsets and all comparison subsets are padded to one static size
``max_class_size`` and evaluated as masked entropies, batched with ``vmap``, so
the whole estimate is one compiled computation that can run inside a jitted
step and be ``vmap``-ed over ``sigma``. Subsets that need no work (repeats of
a shared comparison subset, classes with fewer than two members, unused class
slots) are moved to the end of the batch and skipped: balanced classes take
one batch of ``C + R`` subsets instead of ``C (1 + R)``.

The machinery is generic in the entropy: :func:`mutual_information` takes any
masked entropy ``entropy_fn(points [m, d], mask [m], params) -> scalar``, where
``entropy_fn`` is hashable (a module-level function, or a NamedTuple of static
settings with a ``__call__``) because it is a static argument of the compiled
computation, and ``params`` is a pytree of numbers (traced, so sweeps compile
once). :func:`dsmi` is it with the diffusion spectral entropy.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.affinity import Bandwidth, check_knn_k, pairwise_sq_distances, parse_bandwidth
from jaxdse.diffusion import METHODS as _EXACT_METHODS
from jaxdse.diffusion import _diffusion_eigenvalues, dense_bytes, eigenvalues_from_sq_distances, get_memory_budget
from jaxdse.entropy import entropy_of_spectrum
from jaxdse.sharding import check_mesh, num_shards, replicate_input, sharded_vmap

ESTIMATORS = ("subsample", "plugin")
COMPARISONS = ("shared", "independent")
CLUSTER_METHODS = ("spectral", "diffusion")


class MutualInformation(NamedTuple):
    """A mutual-information estimate with its per-class terms.

    Attributes:
      value: the estimate (scalar, units of ``base``).
      class_weights: ``[C]`` ``p(c) = n_c / n`` (0 for unused class slots).
      class_sizes: ``[C]`` ``n_c``.
      conditional_entropy: ``[C]`` ``H(Z | Y = c)``.
      comparison_entropy: ``[C, R]`` entropies of the random equal-size subsets
        (``"subsample"``), or ``[C, 0]`` for ``"plugin"``.
      total_entropy: ``H(Z)`` on all rows for ``"plugin"``; NaN for ``"subsample"``.

    An entropy that returns an array per subset (DSMI with an array ``t``) puts
    its axes in front of every field but the weights and sizes, as
    :func:`jaxdse.dse` does: ``value`` ``[*T]``, ``conditional_entropy``
    ``[*T, C]``, ``comparison_entropy`` ``[*T, C, R]``.
    """

    value: jax.Array
    class_weights: jax.Array
    class_sizes: jax.Array
    conditional_entropy: jax.Array
    comparison_entropy: jax.Array
    total_entropy: jax.Array

    @property
    def per_class(self):
        """``[C]`` per-class contributions ``p(c) [H(Z*_c) - H(Z | c)]`` (subsample)
        or ``p(c) [H(Z) - H(Z | c)]`` (plugin); they sum to ``value``."""
        if self.comparison_entropy.shape[-1] == 0:
            return self.class_weights * (self.total_entropy[..., None] - self.conditional_entropy)
        return self.class_weights * (jnp.mean(self.comparison_entropy, -1) - self.conditional_entropy)


# ---------------------------------------------------------------- references


def _is_integer_dtype(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.integer)


def bin_reference(y, n_clusters: int):
    """Equal-width binning of a continuous scalar reference ``[n]`` into ``n_clusters`` bins.

    Min-max scaled to [0, 1] and cut at ``0, 1/k, ..., (k-1)/k`` like the
    reference package (``np.digitize``), giving bins 0..k-1. A constant
    reference falls into one bin. Concrete input is binned in float64 on the
    host, exactly as the reference does; traced input in its own dtype.
    """
    if _checks.is_concrete(y):
        return jnp.asarray(_bin_on_host(y, n_clusters))
    y = jnp.asarray(y).reshape(-1)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(_checks.float_dtype())
    lo, hi = jnp.min(y), jnp.max(y)
    span = hi - lo
    scaled = jnp.where(span > 0, (y - lo) / jnp.where(span > 0, span, 1.0), 0.0)
    edges = jnp.linspace(0.0, 1.0, n_clusters + 1, dtype=y.dtype)[:-1]
    return (jnp.searchsorted(edges, scaled, side="right") - 1).astype(jnp.int32)


def _bin_on_host(y, n_clusters):
    v = np.asarray(y, np.float64).reshape(-1)
    lo, hi = v.min(), v.max()
    scaled = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    edges = np.linspace(0.0, 1.0, n_clusters + 1)[:-1]
    return (np.digitize(scaled, edges) - 1).astype(np.int32)


def cluster_reference(y, n_clusters: int = 10, *, key=None, method: str = "spectral"):
    """Integer cluster assignments ``[n]`` for a continuous reference ``y``.

    Compute it once for fixed inputs (e.g. the flattened images of an
    evaluation set) and pass the result to :func:`dsmi` as labels in every
    epoch, instead of clustering again.

    * ``y`` of shape ``[n]`` or ``[n, 1]``: ``n_clusters`` equal-width bins
      (:func:`bin_reference`).
    * ``y`` of shape ``[n, d']``: clustering. ``method="spectral"`` (default) is
      scikit-learn's spectral clustering on a nearest-neighbour graph, as in the
      reference package (needs scikit-learn); ``method="diffusion"`` is pure JAX:
      a spectral embedding (the top ``n_clusters`` eigenvectors of the symmetric
      diffusion operator with a 10-nearest-neighbour adaptive bandwidth, rows
      scaled to unit length) followed by k-means with k-means++ seeding and
      several restarts. It needs a dense eigendecomposition: ``O(n^3)``.

    Deterministic for a given ``key``. With ``key=None`` the spectral method
    uses ``random_state=0``, which reproduces the reference package's clusters.

    >>> import numpy as np
    >>> labels = cluster_reference(np.array([0.0, 0.1, 0.9, 1.0]), 2)
    >>> labels.tolist()
    [0, 0, 1, 1]
    """
    _checks.check_choice(method, "method", CLUSTER_METHODS)
    arr = np.asarray(y) if _checks.is_concrete(y) else y
    if np.ndim(arr) == 2 and np.shape(arr)[1] == 1:
        arr = arr.reshape(-1)
    if np.ndim(arr) == 1:
        n = np.shape(arr)[0]
        _check_n_clusters(n_clusters, n)
        ref = _checks.as_points(jnp.reshape(jnp.asarray(arr), (-1, 1)), "y")
        return bin_reference(ref[:, 0], n_clusters)
    ref = _checks.as_points(arr, "y")
    n = ref.shape[0]
    _check_n_clusters(n_clusters, n)
    if method == "spectral":
        seed = 0 if key is None else int(jax.random.randint(key, (), 0, 2**31 - 1))
        return _spectral_clustering_sklearn(np.asarray(ref, np.float64), n_clusters, seed)
    key = jax.random.PRNGKey(0) if key is None else key
    return _diffusion_kmeans(ref, key, n_clusters=n_clusters)


def _check_n_clusters(n_clusters, n):
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(f"n_clusters must be an integer, got {n_clusters!r}")
    if not 2 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 2 and n={n}, got {n_clusters}")


def _spectral_clustering_sklearn(y, n_clusters, seed):
    try:
        from sklearn.cluster import SpectralClustering
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "cluster_reference(method='spectral') needs scikit-learn; install it or use method='diffusion'"
        ) from err
    n_neighbors = min(10, y.shape[0] - 1)
    model = SpectralClustering(
        n_clusters=n_clusters,
        affinity="nearest_neighbors",
        n_neighbors=n_neighbors,
        assign_labels="cluster_qr",
        random_state=seed,
    ).fit(y)
    return jnp.asarray(model.labels_, jnp.int32)


@partial(jax.jit, static_argnames=("n_clusters", "restarts", "iterations"))
def _diffusion_kmeans(y, key, *, n_clusters, restarts=8, iterations=50):
    from jaxdse.diffusion import symmetric_diffusion_operator

    n = y.shape[0]
    k = min(10, n - 1)
    S, v = symmetric_diffusion_operator(y, sigma=("knn", k))
    _, V = jnp.linalg.eigh(S)
    # Spectral embedding (Ng-Jordan-Weiss): the top n_clusters eigenvectors of
    # the symmetric diffusion operator, each row scaled to unit length. This
    # also holds when the graph falls apart into components (eigenvalue 1
    # repeated), where any basis of the top eigenspace is returned.
    emb = V[:, -n_clusters:]
    emb = emb / (jnp.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)
    keys = jax.random.split(key, restarts)
    labels, inertia = jax.vmap(lambda kk: _kmeans(emb, kk, n_clusters, iterations))(keys)
    return labels[jnp.argmin(inertia)].astype(jnp.int32)


def _kmeans(x, key, k, iterations):
    n = x.shape[0]

    def plus_plus(carry, key_i):
        centres, count = carry
        d2 = jnp.min(jnp.sum((x[:, None] - centres[None]) ** 2, -1) + jnp.where(jnp.arange(k) < count, 0, jnp.inf), 1)
        probs = jnp.where(count == 0, jnp.ones(n), d2)
        i = jax.random.choice(key_i, n, p=probs / jnp.sum(probs))
        return (centres.at[count].set(x[i]), count + 1), None

    (centres, _), _ = jax.lax.scan(plus_plus, (jnp.zeros((k, x.shape[1]), x.dtype), 0), jax.random.split(key, k))

    def lloyd(centres, _):
        labels = jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), 1)
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)
        counts = onehot.sum(0)
        new = (onehot.T @ x) / jnp.maximum(counts, 1)[:, None]
        return jnp.where(counts[:, None] > 0, new, centres), None

    centres, _ = jax.lax.scan(lloyd, centres, None, length=iterations)
    d2 = jnp.sum((x[:, None] - centres[None]) ** 2, -1)
    return jnp.argmin(d2, 1), jnp.sum(jnp.min(d2, 1))


def prepare_labels(y, n: int, *, n_clusters: int = 10, reference_discrete=None, key=None, num_classes=None):
    """Turn a reference ``y`` into integer labels ``[n]`` and a static class count.

    Integer ``[n]``/``[n, 1]`` labels are classes (any integer values; remapped
    to 0..C-1 eagerly, or with ``jnp.unique(size=num_classes)`` under jit). A
    continuous ``[n]``/``[n, 1]`` reference is binned into ``n_clusters`` bins; a
    continuous ``[n, d']`` reference is clustered with :func:`cluster_reference`
    (eagerly only: under jit pass precomputed assignments).

    Returns ``(labels int32 [n], num_classes)``; labels outside 0..C-1 (more
    distinct values than ``num_classes`` under jit) are marked by ``-1``.
    """
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"y must be an array of labels or reference values, got {type(y).__name__}")
    shape = np.shape(y)
    dtype = np.dtype(getattr(y, "dtype", None) or np.asarray(y).dtype)
    if dtype == np.bool_:
        y = jnp.asarray(y, jnp.int32)
        dtype = np.dtype(np.int32)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"y must have a real numeric dtype, got {dtype}")
    if len(shape) == 0 or len(shape) > 2:
        raise ValueError(f"y must have shape [n], [n, 1] or [n, d'], got {tuple(shape)}")
    if shape[0] != n:
        raise ValueError(f"y has {shape[0]} rows but z has n={n}; they must describe the same samples")
    column = len(shape) == 1 or shape[1] == 1
    integer = _is_integer_dtype(dtype)
    if reference_discrete is None:
        reference_discrete = column and integer
    if reference_discrete:
        if not integer:
            raise ValueError(
                f"y: labels given as discrete (reference_discrete=True) must be integers, got dtype {dtype}"
            )
        if not column:
            raise ValueError(f"y: discrete labels must have shape [n] or [n, 1], got {tuple(shape)}")
        labels = np.asarray(y).reshape(-1) if _checks.is_concrete(y) else jnp.reshape(y, (-1,))
        return _remap_labels(labels, num_classes)
    if column:
        _check_n_clusters(n_clusters, n)
        if _checks.is_concrete(y):
            _checks.as_points(np.asarray(y).reshape(-1, 1), "y")  # finite values
            labels = _bin_on_host(y, n_clusters)
        else:
            labels = bin_reference(y, n_clusters)
        return _remap_labels(labels, num_classes)
    if not _checks.is_concrete(y):
        raise ValueError(
            "y: a continuous multi-dimensional reference cannot be clustered under jit; "
            "cluster it once with jaxdse.cluster_reference(y, n_clusters) and pass the assignments"
        )
    labels = np.asarray(cluster_reference(y, n_clusters, key=key))
    return _remap_labels(labels, num_classes)


def _remap_labels(labels, num_classes):
    if _checks.is_concrete(labels):
        # Concrete labels are handled on the host, also while tracing a jit.
        values, inverse = np.unique(np.asarray(labels), return_inverse=True)
        if num_classes is None:
            num_classes = len(values)
        _check_num_classes(num_classes)
        if len(values) > num_classes:
            raise ValueError(f"y has {len(values)} distinct labels, more than num_classes={num_classes}")
        return np.asarray(inverse.reshape(-1), np.int32), num_classes
    if num_classes is None:
        raise ValueError("num_classes must be given (static) when the labels are traced under jit")
    _check_num_classes(num_classes)
    values, inverse = jnp.unique(labels, size=num_classes, fill_value=jnp.max(labels), return_inverse=True)
    inverse = inverse.reshape(-1).astype(jnp.int32)
    # More distinct labels than num_classes: unique() dropped some; mark them.
    ok = values[inverse] == labels
    return jnp.where(ok, inverse, -1), num_classes


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


# ---------------------------------------------------------------- the estimate


def pad_size(max_count: int, n: int) -> int:
    """Round a largest class size up (to limit recompilation), never above ``n``.

    The step is the power of two nearest to ``max_count / 32`` (at least 8), so
    the padding adds at most about 3% more points (about 10% more eigenvalue work).
    """
    step = max(8, 1 << max(0, int(round(np.log2(max(max_count, 1) / 32)))))
    return int(min(n, -(-max_count // step) * step))


def mutual_information(
    z,
    y,
    *,
    entropy_fn: Callable,
    params=(),
    key=None,
    num_repetitions: int = 5,
    estimator: str = "subsample",
    n_clusters: int = 10,
    num_classes: int | None = None,
    max_class_size: int | None = None,
    reference_discrete: bool | None = None,
    comparison: str = "shared",
    batch_size: int | None = None,
    bytes_per_subset: Callable[[int], int] | None = None,
    mesh=None,
) -> MutualInformation:
    """Mutual information ``I(Z; Y)`` from any masked entropy, with per-class terms.

    ``entropy_fn(points [m, d], mask [m] bool, params) -> scalar`` must ignore
    ``False`` rows exactly; it must be hashable (it is static: a module-level
    function or a NamedTuple of static settings with ``__call__``), and
    ``params`` carries its numeric settings as a pytree. See the module
    docstring for the estimators and :func:`dsmi` for the other arguments.
    ``batch_size`` bounds how many padded subsets are evaluated at once
    (``None``: a default, lowered when ``bytes_per_subset(m)`` times that many
    exceeds the memory budget); ``mesh`` (a ``jax.sharding.Mesh``) splits each
    such batch over its devices.
    """
    _checks.check_choice(estimator, "estimator", ESTIMATORS)
    _checks.check_choice(comparison, "comparison", COMPARISONS)
    check_mesh(mesh)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    z = replicate_input(_checks.as_points(z, "z"), mesh)
    n = z.shape[0]
    if isinstance(num_repetitions, bool) or not isinstance(num_repetitions, (int, np.integer)) or num_repetitions < 1:
        raise ValueError(f"num_repetitions must be an integer >= 1, got {num_repetitions!r}")
    if estimator == "subsample":
        if key is None:
            raise ValueError("key is required for estimator='subsample' (random comparison subsets): pass jax.random.key(0)")
    labels, num_classes = prepare_labels(
        y, n, n_clusters=n_clusters, reference_discrete=reference_discrete, key=key, num_classes=num_classes
    )
    if max_class_size is None:
        if not _checks.is_concrete(labels):
            raise ValueError("max_class_size must be given (static) when the labels are traced under jit")
        counts = np.bincount(np.asarray(labels), minlength=num_classes)
        max_class_size = pad_size(int(counts.max()), n)
    elif isinstance(max_class_size, bool) or not isinstance(max_class_size, (int, np.integer)) or not (
        1 <= max_class_size <= n
    ):
        raise ValueError(f"max_class_size must be an integer in [1, n={n}], got {max_class_size!r}")
    if key is None:
        key = jax.random.PRNGKey(0)  # unused by the plugin estimator
    repetitions = num_repetitions if estimator == "subsample" else 0
    shared = comparison == "shared"
    num_subsets = num_classes * (1 + repetitions)
    # One batch holds every subset that needs evaluating: counted exactly for
    # concrete labels; under jit, as for balanced classes (with shared
    # comparison subsets, one set of R for all classes; unequal class sizes
    # then take further batches).
    evaluated = _subsets_evaluated(labels, num_classes, repetitions, shared)
    if evaluated is None:
        evaluated = num_classes + repetitions if shared and repetitions else num_subsets
    chunk = max(1, evaluated)
    if batch_size is not None:
        chunk = min(chunk, int(batch_size))
    elif bytes_per_subset is not None:
        devices = num_shards(mesh)
        fit = devices * max(1, get_memory_budget() // max(bytes_per_subset(max_class_size), 1))
        chunk = min(chunk, int(fit))
    # An entropy that can start from distances, with subsets whose distance
    # blocks together outweigh one n x n matrix (few large classes, large d):
    # compute all distances once and gather each subset's block.
    share_distances = (
        hasattr(entropy_fn, "from_sq_distances")
        and evaluated * max_class_size**2 > n * n
        and 2 * dense_bytes(n, z.dtype, "auto") // 4 <= get_memory_budget()
    )
    return _mutual_information(
        z,
        labels,
        key,
        params,
        entropy_fn=entropy_fn,
        share_distances=share_distances,
        num_classes=int(num_classes),
        max_class_size=int(max_class_size),
        repetitions=int(repetitions),
        plugin=estimator == "plugin",
        shared=shared,
        chunk=None if chunk >= num_subsets else chunk,
        mesh=mesh,
    )


def _subsets_evaluated(labels, num_classes, repetitions, shared):
    """How many padded subsets the estimate evaluates (concrete labels), else None."""
    if not _checks.is_concrete(labels):
        return None
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    counts = counts[counts >= 2]
    per_class = len(np.unique(counts)) if shared else len(counts)
    return len(counts) + repetitions * per_class


@partial(
    jax.jit,
    static_argnames=(
        "entropy_fn",
        "num_classes",
        "max_class_size",
        "repetitions",
        "plugin",
        "shared",
        "chunk",
        "mesh",
        "share_distances",
    ),
)
def _mutual_information(
    z,
    labels,
    key,
    params,
    *,
    entropy_fn,
    num_classes,
    max_class_size,
    repetitions,
    plugin,
    shared=True,
    chunk=None,
    mesh=None,
    share_distances=False,
):
    n = z.shape[0]
    C, M, R = num_classes, max_class_size, repetitions
    classes = jnp.arange(C, dtype=jnp.int32)
    counts = jnp.sum(labels[None, :] == classes[:, None], axis=1)
    # Each class's members first (stable order), padded with other rows.
    member_first = jax.vmap(lambda c: jnp.argsort(labels != c, stable=True)[:M])(classes)
    # The first class of each size: with shared comparison subsets, classes of
    # equal size have identical comparison subsets, evaluated once.
    first_of_size = jnp.argmax(counts[None, :] == counts[:, None], axis=1)
    rep_keys = jax.random.split(key, max(R, 1))

    def describe(i):
        # Subset i = (class c, slot j): j = 0 is the class itself, j = r >= 1
        # its r-th comparison subset. Both keep the first n_c of M rows.
        c, j = i // (1 + R), i % (1 + R)
        mask = jnp.arange(M) < counts[c]
        if R == 0:
            return member_first[c], mask
        # M distinct rows drawn uniformly in random order: the top M of n
        # uniform scores (a partial sort, cheaper than a permutation for M << n).
        # Shared: the key depends on the repetition and the class size only.
        k = jax.random.fold_in(rep_keys[jnp.maximum(j - 1, 0)], counts[c] if shared else c)
        drawn = jax.lax.top_k(jax.random.uniform(k, (n,)), M)[1]
        return jnp.where(j == 0, member_first[c], drawn), mask

    # Subsets worth evaluating: at least 2 members (fewer gives entropy 0; an
    # absent class slot has none) and, for shared comparisons, not a repeat.
    distinct = jnp.ones((C, 1 + R), bool)
    if shared and R > 0:
        distinct = distinct.at[:, 1:].set((first_of_size == classes)[:, None])
    needed = (distinct & (counts >= 2)[:, None]).reshape(-1)
    entropies = _evaluate_subsets(z, describe, needed, params, entropy_fn, chunk, mesh, share_distances)
    # An entropy may return an array per subset (e.g. one value per diffusion
    # time): its axes go first, as in ``dse``, and the class axes last.
    entropies = jnp.moveaxis(entropies.reshape((C, 1 + R) + entropies.shape[1:]), (0, 1), (-2, -1))
    conditional = entropies[..., 0]
    comparison = entropies[..., first_of_size, 1:] if shared else entropies[..., 1:]
    weights = counts / n
    if plugin:
        total = entropy_fn(z, jnp.ones(n, bool), params)
        per_class = weights * (total[..., None] - conditional)
    else:
        total = jnp.full(conditional.shape[:-1], jnp.nan, conditional.dtype)
        per_class = weights * (jnp.mean(comparison, axis=-1) - conditional)
    # A class holding every sample carries no information: exactly 0.
    per_class = jnp.where(counts == n, 0.0, per_class)
    value = jnp.sum(per_class, axis=-1)
    # Labels that could not be placed (more classes than num_classes) or a
    # class larger than max_class_size: NaN, never a truncated estimate.
    invalid = jnp.any(labels < 0) | jnp.any(counts > M)
    value = jnp.where(invalid, jnp.nan, value)
    return MutualInformation(value, weights, counts, conditional, comparison, total)


def _evaluate_subsets(z, describe, needed, params, entropy_fn, chunk, mesh, share_distances):
    """Entropies of the padded subsets ``describe(i) = (rows [M], mask [M])``, 0 where not ``needed``.

    The needed subsets are moved to the front and evaluated ``chunk`` at a time
    (one ``vmap`` each, split over ``mesh`` if given) in a ``lax.scan`` whose
    chunks past the last needed subset are skipped; ``chunk=None`` evaluates
    all subsets in one ``vmap``.
    """
    N = needed.shape[0]

    if share_distances:
        finite = jnp.all(jnp.isfinite(z))
        d2_all = pairwise_sq_distances(jnp.where(finite, z, 0.0))

        def one(idx, m):
            h = entropy_fn.from_sq_distances(d2_all[idx[:, None], idx[None, :]], z.shape[1], m, params)
            return jnp.where(finite, h, jnp.nan)

    else:

        def one(idx, m):
            return entropy_fn(z[idx], m, params)

    def subset_entropy(i):
        idx, m = describe(i)
        # A subset with fewer than two members is not needed; give the solver
        # a valid two-row problem instead.
        m = m | (jnp.arange(m.shape[0]) < 2) & (jnp.sum(m) < 2)
        return one(idx, m)

    batched = sharded_vmap(subset_entropy, mesh)
    if chunk is None or chunk >= N:
        h = batched(jnp.arange(N))
        return jnp.where(_expand(needed, h), h, 0.0)

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
            lambda: jnp.zeros(out.shape, out.dtype),
        )
        return None, h

    _, h = jax.lax.scan(step, None, jnp.arange(num_chunks))
    h = h.reshape((-1,) + h.shape[2:])
    keep = jnp.arange(h.shape[0]) < num_needed
    return jnp.zeros((N,) + h.shape[1:], h.dtype).at[order].set(jnp.where(_expand(keep, h), h, 0.0), mode="drop")


def _expand(flags, like):
    """``flags [N]`` reshaped to broadcast against ``like [N, ...]``."""
    return flags.reshape(flags.shape + (1,) * (like.ndim - 1))


# ---------------------------------------------------------------- DSMI


class DiffusionEntropy(NamedTuple):
    """Masked DSE as a hashable entropy for :func:`mutual_information`.

    Static: the bandwidth rule, its k (knn) and the eigenvalue method; the
    numbers ``(sigma, t, alpha, base)`` come in ``params``.
    """

    rule: str = "fixed"
    k: int | None = None
    method: str = "auto"

    def __call__(self, points, mask, params):
        sigma, t, alpha, base = params
        bandwidth = Bandwidth(self.rule, sigma if self.rule == "fixed" else self.k)
        lam = _diffusion_eigenvalues(points, bandwidth, alpha, mask, self.method, sort=False)
        return entropy_of_spectrum(lam, t, base)

    def from_sq_distances(self, d2, d, mask, params):
        """The same entropy from the points' squared distances ``[m, m]`` (``d`` features)."""
        sigma, t, alpha, base = params
        lam = eigenvalues_from_sq_distances(
            d2, d, sigma, alpha, mask, rule=self.rule, k=self.k, method=self.method, sort=False
        )
        return entropy_of_spectrum(lam, t, base)


def dsmi_terms(
    z,
    y,
    *,
    key=None,
    sigma=10.0,
    t=1.0,
    alpha=0.0,
    base=2.0,
    num_repetitions: int = 5,
    estimator: str = "subsample",
    n_clusters: int = 10,
    num_classes: int | None = None,
    max_class_size: int | None = None,
    reference_discrete: bool | None = None,
    method: str = "auto",
    comparison: str = "shared",
    batch_size: int | None = None,
    mesh=None,
) -> MutualInformation:
    """:func:`dsmi` with its per-class terms (a :class:`MutualInformation`)."""
    _checks.check_choice(method, "method", _EXACT_METHODS)
    bandwidth = parse_bandwidth(sigma)
    t = _checks.check_positive(t, "t", allow_array=True)
    alpha = _checks.check_alpha(alpha)
    base = _checks.check_base(base)
    # z itself is validated (once) by mutual_information.
    dtype = getattr(z, "dtype", None)
    floating = dtype is not None and np.issubdtype(dtype, np.floating) and np.dtype(dtype).itemsize >= 4
    dtype = dtype if floating else _checks.float_dtype()
    if bandwidth.rule == "knn":
        check_knn_k(bandwidth, 2)

    entropy_fn = DiffusionEntropy(bandwidth.rule, bandwidth.value if bandwidth.rule == "knn" else None, method)
    sigma_value = bandwidth.value if bandwidth.rule == "fixed" else 0.0
    return mutual_information(
        z,
        y,
        entropy_fn=entropy_fn,
        params=(sigma_value, t, alpha, base),
        key=key,
        num_repetitions=num_repetitions,
        estimator=estimator,
        n_clusters=n_clusters,
        num_classes=num_classes,
        max_class_size=max_class_size,
        reference_discrete=reference_discrete,
        comparison=comparison,
        batch_size=batch_size,
        bytes_per_subset=lambda m: dense_bytes(m, dtype, method),
        mesh=mesh,
    )


def dsmi(
    z,
    y,
    *,
    key=None,
    sigma=10.0,
    t=1.0,
    alpha=0.0,
    base=2.0,
    num_repetitions: int = 5,
    estimator: str = "subsample",
    n_clusters: int = 10,
    num_classes: int | None = None,
    max_class_size: int | None = None,
    reference_discrete: bool | None = None,
    method: str = "auto",
    comparison: str = "shared",
    batch_size: int | None = None,
    mesh=None,
):
    """Diffusion spectral mutual information ``DSMI(Z; Y)`` (units of ``base``; scalar for a scalar ``t``).

    ``DSMI = sum_c p(c) [mean_r DSE(Z*_{c,r}) - DSE(Z | Y = c)]`` for the default
    ``estimator="subsample"`` (random equal-size subsets ``Z*``, as the reference
    package), or ``DSE(Z) - sum_c p(c) DSE(Z | Y = c)`` for ``"plugin"``. In
    expectation 0 when ``Z`` and ``Y`` are independent; bounded above by about
    ``DSE(Z)``.

    Args:
      z: ``[n, d]`` representation.
      y: reference for the same n samples: integer class labels ``[n]`` or
        ``[n, 1]`` (any integer values), cluster assignments from
        :func:`cluster_reference`, a continuous scalar ``[n]`` (binned into
        ``n_clusters`` equal-width bins) or continuous vectors ``[n, d']``
        (clustered into ``n_clusters`` groups; better clustered once with
        :func:`cluster_reference` and reused).
      key: ``jax.random`` key; required for ``"subsample"``.
      sigma, t, alpha, base, method: as in :func:`jaxdse.dse`. An array ``t``
        ``[*T]`` gives one DSMI per time, from the same eigenvalues and the
        same random subsets (a cheap t sweep); the result has shape ``[*T]``.
      num_repetitions: random subsets per class (``"subsample"``).
      estimator: ``"subsample"`` or ``"plugin"``.
      n_clusters: bins or clusters for a continuous reference.
      num_classes, max_class_size: static class count and padded subset size.
        Derived from the data when the labels are concrete (the pad size rounded
        up to limit recompilation); required under ``jit`` with traced labels.
        Under ``jit``, a class larger than ``max_class_size`` or more distinct
        labels than ``num_classes`` makes the result NaN (never a truncation).
      reference_discrete: force the reading of ``y`` (as the reference package).
      comparison: ``"shared"`` (default, as the reference package, which
        reseeds its generator for every class): classes of equal size share
        their ``R`` comparison subsets, each evaluated once; classes of
        different sizes get independent ones. ``"independent"``: fresh subsets
        for every class (``C R`` of them: slower for balanced classes, with a
        lower variance).
      batch_size: evaluate at most this many padded subsets at once; the
        default is ``C + R`` (one batch for balanced classes with shared
        comparisons, ``C (1 + R)`` for independent ones), lowered if needed to
        fit the memory budget. Batches beyond the last needed subset are
        skipped.
      mesh: a ``jax.sharding.Mesh`` (any axis types; all axes are used,
        flattened): each batch of padded subsets is split over its devices;
        same result as one device up to float rounding, replicated on all.

    A class with a single member has conditional entropy 0 (and so have its
    one-point comparison subsets); a single class overall gives exactly 0.

    Works under ``jit`` (labels traced with ``num_classes``/``max_class_size``
    given), ``vmap`` over ``sigma``/``t``/``z`` (compiles once), and ``grad`` with
    respect to ``z``.

    >>> import jax, numpy as np
    >>> z = np.concatenate([np.zeros((20, 2)), np.ones((20, 2)) * 50]) + np.random.default_rng(0).normal(size=(40, 2))
    >>> y = np.repeat([0, 1], 20)
    >>> round(float(dsmi(z, y, sigma=2.0, estimator="plugin")), 2)
    1.0
    """
    return dsmi_terms(
        z,
        y,
        key=key,
        sigma=sigma,
        t=t,
        alpha=alpha,
        base=base,
        num_repetitions=num_repetitions,
        estimator=estimator,
        n_clusters=n_clusters,
        num_classes=num_classes,
        max_class_size=max_class_size,
        reference_discrete=reference_discrete,
        method=method,
        comparison=comparison,
        batch_size=batch_size,
        mesh=mesh,
    ).value

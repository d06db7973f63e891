"""Clustering a continuous reference into classes, once, for mutual information.

DSMI(Z; X) with a continuous multi-dimensional reference ``X`` (e.g. the
flattened input images) needs class assignments. They are computed once, since
the inputs do not change during training, and passed as labels afterwards.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.kernels.points import sq_distances
from jaxdse.solvers import _linalg
from jaxdse.solvers.diffusion import symmetric_diffusion_operator

CLUSTER_METHODS = ("spectral", "diffusion")


def bin_reference(y, num_clusters: int):
    """Equal-width binning of a continuous scalar reference ``[n]`` into ``num_clusters`` bins.

    Min-max scaled to [0, 1] and cut at ``0, 1/k, ..., (k-1)/k`` like the
    reference package (``np.digitize``), giving bins 0..k-1. A constant
    reference falls into one bin. Concrete input is binned in float64 on the
    host, exactly as the reference does; traced input in its own dtype.
    """
    if _checks.is_concrete(y):
        return jnp.asarray(_bin_on_host(y, num_clusters))
    y = jnp.asarray(y).reshape(-1)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(_checks.float_dtype())
    lo, hi = jnp.min(y), jnp.max(y)
    span = hi - lo
    scaled = jnp.where(span > 0, (y - lo) / jnp.where(span > 0, span, 1.0), 0.0)
    edges = jnp.linspace(0.0, 1.0, num_clusters + 1, dtype=y.dtype)[:-1]
    labels = (jnp.searchsorted(edges, scaled, side="right") - 1).astype(jnp.int32)
    # A non-finite value anywhere makes every label invalid (-1): the estimate is NaN.
    return jnp.where(jnp.all(jnp.isfinite(y)), labels, -1)


def _bin_on_host(y, num_clusters):
    v = np.asarray(y, np.float64).reshape(-1)
    lo, hi = v.min(), v.max()
    scaled = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    edges = np.linspace(0.0, 1.0, num_clusters + 1)[:-1]
    return (np.digitize(scaled, edges) - 1).astype(np.int32)


def _check_num_clusters(num_clusters, n):
    _checks.check_int(num_clusters, "num_clusters", minimum=2, maximum=n)


def cluster_reference(y, num_clusters: int = 10, *, key=None, method: str = "spectral"):
    """Integer cluster assignments ``[n]`` for a continuous reference ``y``.

    Compute it once for fixed inputs (e.g. the flattened images of an
    evaluation set) and pass the result to :func:`dsmi` as labels in every
    epoch, instead of clustering again.

    * ``y`` of shape ``[n]`` or ``[n, 1]``: ``num_clusters`` equal-width bins
      (:func:`bin_reference`).
    * ``y`` of shape ``[n, d']``: clustering. ``method="spectral"`` (default) is
      scikit-learn's spectral clustering on a nearest-neighbour graph, as in the
      reference package (needs scikit-learn); ``method="diffusion"`` is pure JAX:
      a spectral embedding (the top ``num_clusters`` eigenvectors of the symmetric
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
        _check_num_clusters(num_clusters, n)
        ref = _checks.as_points(jnp.reshape(jnp.asarray(arr), (-1, 1)), "y")
        return bin_reference(ref[:, 0], num_clusters)
    ref = _checks.as_points(arr, "y")
    n = ref.shape[0]
    _check_num_clusters(num_clusters, n)
    key = None if key is None else _checks.as_key(key)
    if method == "spectral":
        seed = 0 if key is None else int(jax.random.randint(key, (), 0, 2**31 - 1))
        return _spectral_clustering_sklearn(np.asarray(ref, np.float64), num_clusters, seed)
    key = jax.random.key(0) if key is None else key
    return _diffusion_kmeans(ref, key, num_clusters=num_clusters)


def _spectral_clustering_sklearn(y, num_clusters, seed):
    try:
        from sklearn.cluster import SpectralClustering
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "cluster_reference(method='spectral') needs scikit-learn; install it or use method='diffusion'"
        ) from err
    n_neighbors = min(10, y.shape[0] - 1)
    model = SpectralClustering(
        n_clusters=num_clusters,
        affinity="nearest_neighbors",
        n_neighbors=n_neighbors,
        assign_labels="cluster_qr",
        random_state=seed,
    ).fit(y)
    return jnp.asarray(model.labels_, jnp.int32)


@partial(jax.jit, static_argnames=("num_clusters", "restarts", "iterations"))
def _diffusion_kmeans(y, key, *, num_clusters, restarts=8, iterations=50):
    n = y.shape[0]
    k = min(10, n - 1)
    S, v = symmetric_diffusion_operator(y, sigma=("knn", k))
    _, V = _linalg.eigh(S)
    # Spectral embedding (Ng-Jordan-Weiss): the top num_clusters eigenvectors of
    # the symmetric diffusion operator, each row scaled to unit length. This
    # also holds when the graph falls apart into components (eigenvalue 1
    # repeated), where any basis of the top eigenspace is returned.
    emb = V[:, -num_clusters:]
    emb = emb / (jnp.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)
    keys = jax.random.split(key, restarts)
    labels, inertia = jax.vmap(lambda kk: _kmeans(emb, kk, num_clusters, iterations))(keys)
    return labels[jnp.argmin(inertia)].astype(jnp.int32)


def _kmeans(x, key, k, iterations):
    n = x.shape[0]

    def plus_plus(carry, key_i):
        centres, count = carry
        d2 = jnp.min(sq_distances(x, centres) + jnp.where(jnp.arange(k) < count, 0, jnp.inf), 1)
        probs = jnp.where(count == 0, jnp.ones(n), d2)
        i = jax.random.choice(key_i, n, p=probs / jnp.sum(probs))
        return (centres.at[count].set(x[i]), count + 1), None

    (centres, _), _ = jax.lax.scan(plus_plus, (jnp.zeros((k, x.shape[1]), x.dtype), 0), jax.random.split(key, k))

    def lloyd(centres, _):
        labels = jnp.argmin(sq_distances(x, centres), 1)
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)
        counts = onehot.sum(0)
        new = (onehot.T @ x) / jnp.maximum(counts, 1)[:, None]
        return jnp.where(counts[:, None] > 0, new, centres), None

    centres, _ = jax.lax.scan(lloyd, centres, None, length=iterations)
    d2 = sq_distances(x, centres)
    return jnp.argmin(d2, 1), jnp.sum(jnp.min(d2, 1))

"""Points -> Gaussian affinities (SPEC section 1, step 1) and bandwidth rules.

``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``. The reference implementation's
constant factor ``1 / (sigma sqrt(2 pi))`` cancels in the diffusion operator and
is left out.

Bandwidth ``sigma`` is either a positive number (may be traced, so sweeps over it
compile once) or a rule:

* ``"median"``: ``sigma^2 = median_{i != j} ||x_i - x_j||^2 / 2``;
* ``"sqrt_dim"``: ``sigma = sqrt(d)``;
* ``"knn"`` or ``"knn:K"`` (or ``("knn", K)``): adaptive, ``sigma_i`` is the
  distance from ``x_i`` to its K-th nearest neighbour (default K = 7) and
  ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma_i sigma_j))``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

import numpy as np

from jaxdse import _checks

DEFAULT_KNN = 7
RULES = ("median", "sqrt_dim", "knn")
# Every product that feeds distances or kernels runs in full float32: at default
# precision GPUs may use TF32 and TPUs bfloat16 passes (about 3 digits).
HIGHEST = jax.lax.Precision.HIGHEST


class Bandwidth(NamedTuple):
    """A parsed bandwidth: ``rule`` is "fixed", "median", "sqrt_dim" or "knn"."""

    rule: str
    value: object = None  # the number for "fixed", k for "knn"


def parse_bandwidth(sigma, name: str = "sigma") -> Bandwidth:
    """Turn a user's ``sigma`` into a :class:`Bandwidth`, with clear errors."""
    if isinstance(sigma, Bandwidth):
        return sigma
    if isinstance(sigma, tuple) and len(sigma) == 2 and sigma[0] == "knn":
        return _knn_rule(sigma[1], name)
    if isinstance(sigma, str):
        if sigma in ("median", "sqrt_dim"):
            return Bandwidth(sigma)
        if sigma == "knn":
            return Bandwidth("knn", DEFAULT_KNN)
        if sigma.startswith("knn:"):
            try:
                k = int(sigma[4:])
            except ValueError:
                raise ValueError(f"{name}={sigma!r}: the k in 'knn:k' must be an integer") from None
            return _knn_rule(k, name)
        raise ValueError(
            f"{name} must be a positive number or one of 'median', 'sqrt_dim', 'knn', 'knn:K'; got {sigma!r}"
        )
    return Bandwidth("fixed", _checks.check_positive(sigma, name))


def _knn_rule(k, name):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name}: the knn bandwidth needs an integer k >= 1, got {k!r}")
    return Bandwidth("knn", int(k))


def pairwise_sq_distances(x, mask=None):
    """Squared Euclidean distances ``[n, n]`` between the rows of ``x`` ``[n, d]``.

    The points are centred first (on the kept rows' mean when ``mask`` is given),
    which leaves distances unchanged but avoids cancellation in
    ``|a|^2 + |b|^2 - 2 a.b`` for data far from the origin. The diagonal is
    exactly 0 and no entry is negative.
    """
    x = jnp.asarray(x)
    if mask is None:
        centre = jnp.mean(x, axis=0)
    else:
        w = mask.astype(x.dtype)
        centre = jnp.matmul(w, x, precision=HIGHEST) / jnp.sum(w)
    x = x - centre
    sq = jnp.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * jnp.matmul(x, x.T, precision=HIGHEST)
    n = x.shape[0]
    return jnp.where(jnp.eye(n, dtype=bool), 0.0, jnp.maximum(d2, 0.0))


def _pair_mask(mask, n):
    if mask is None:
        return None
    return mask[:, None] & mask[None, :]


def median_sigma(d2, mask=None):
    """The median heuristic: ``sigma = sqrt(median_{i<j} d2_ij / 2)`` over kept pairs."""
    n = d2.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    vals = d2[iu, ju]
    if mask is not None:
        vals = jnp.where(mask[iu] & mask[ju], vals, jnp.nan)
        med = jnp.nanmedian(vals)
    else:
        med = jnp.median(vals)
    return jnp.sqrt(med / 2.0)


def knn_sigmas(d2, k: int, mask=None):
    """Per-point bandwidth ``[n]``: distance to the k-th nearest other kept point."""
    n = d2.shape[0]
    # Exclude the point itself and masked points from its neighbours.
    excluded = jnp.eye(n, dtype=bool)
    if mask is not None:
        excluded = excluded | ~mask[None, :]
    big = jnp.asarray(jnp.inf, d2.dtype)
    neg = -jnp.where(excluded, big, d2)
    kth = -jax.lax.top_k(neg, k)[0][:, k - 1]
    return jnp.sqrt(kth)


def resolve_sigma(bandwidth: Bandwidth, d2, d: int, mask=None):
    """The bandwidth as a scalar, or ``[n]`` per-point values for the knn rule."""
    if bandwidth.rule == "fixed":
        return jnp.asarray(bandwidth.value, d2.dtype)
    if bandwidth.rule == "sqrt_dim":
        return jnp.sqrt(jnp.asarray(d, d2.dtype))
    if bandwidth.rule == "median":
        return median_sigma(d2, mask)
    return knn_sigmas(d2, bandwidth.value, mask)


def check_knn_k(bandwidth: Bandwidth, n_kept_max: int, name: str = "sigma"):
    if bandwidth.rule == "knn" and bandwidth.value > n_kept_max - 1:
        raise ValueError(
            f"{name}: the knn bandwidth needs k <= n - 1 = {n_kept_max - 1} neighbours, got k={bandwidth.value}"
        )


def gaussian_affinity(x, *, sigma=10.0, mask=None):
    """Gaussian affinity matrix ``G`` ``[n, n]`` of the rows of ``x`` ``[n, d]``.

    Rows and columns of masked-out points are exactly 0. ``sigma`` as in the
    module docstring. Differentiable in ``x`` and ``sigma``.

    >>> import jax.numpy as jnp
    >>> G = gaussian_affinity(jnp.array([[0.0], [1.0]]), sigma=1.0)
    >>> round(float(G[0, 1]), 4)
    0.6065
    """
    bandwidth = parse_bandwidth(sigma)
    x = jnp.asarray(x)
    d2 = pairwise_sq_distances(x, mask)
    return affinity_from_sq_distances(d2, bandwidth, x.shape[1], mask)


def affinity_from_sq_distances(d2, bandwidth: Bandwidth, d: int, mask=None):
    s = resolve_sigma(bandwidth, d2, d, mask)
    if bandwidth.rule == "knn":
        tiny = jnp.finfo(d2.dtype).tiny
        scale2 = jnp.maximum(s[:, None] * s[None, :], tiny)
    else:
        scale2 = s * s
    G = jnp.exp(-d2 / (2.0 * scale2))
    pairs = _pair_mask(mask, d2.shape[0])
    if pairs is not None:
        G = jnp.where(pairs, G, 0.0)
    return G

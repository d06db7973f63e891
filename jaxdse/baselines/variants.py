"""The reference package's alternative entropies, kept for parity.

* :func:`matrix_entry_entropy`: entropy of the entries of the diffusion matrix
  ``P`` instead of its eigenvalues. The reference builds
  ``K = D_G^-1/2 G D_G^-1/2`` and row-normalises it, which is the diffusion
  operator with anisotropy ``alpha = 1/2``; ``p_ij = |P_ij| / sum |P|``.
* :func:`adjacency_spectral_entropy`: entropy of the normalised eigenvalue
  magnitudes of an adjacency matrix, with no diffusion time: the kNN-binarized
  adjacency (``kind="knn"``), the Gaussian affinity ``G`` (``"gaussian"``), or
  ``D_G^-1/2 G D_G^-1/2`` (``"anisotropic"``, whose spectrum is DSE's at t = 1).

The reference adds machine epsilon to every probability before taking
``-sum p log2 p``; this changes a value by at most about ``N eps log2(1/eps)``
bits for N probabilities (1e-8 bits for a 1000 x 1000 matrix) and is left out
here, so that padding adds exactly nothing. The masked cores take points
prepared by :func:`jaxdse.kernels.points.prepare_points` (the bandwidth rule resolved
once), so the mutual informations use the kernel of the whole set in every
subset, as DSMI does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdse import _checks
from jaxdse.entropy.spectral import entropy_of_spectrum
from jaxdse.kernels.points import HIGHEST, ScaledPoints, affinity_matrix, prepare_points, usable
from jaxdse.solvers import _linalg
from jaxdse.solvers._linalg import symmetric_eigvals
from jaxdse.solvers.diffusion import dense_symmetric_operator
from jaxdse.solvers.memory import check_memory, dense_bytes, get_memory_budget

KINDS = ("knn", "gaussian", "anisotropic")


def _check_common(x, sigma, base, mask):
    x, bandwidth, mask = _checks.check_points_and_bandwidth(x, sigma, mask)
    base = _checks.check_base(base)
    check_memory(dense_bytes(x.shape[0], x.dtype, 5), get_memory_budget(), f"n={x.shape[0]} points")
    return x, bandwidth, base, mask


def _finite_or_nan(value, points, keep):
    """NaN where kept points or their bandwidths are not finite, or fewer than two rows are kept (under jit)."""
    return jnp.where(usable(points, keep), value, jnp.nan)


def matrix_entry_entropy(x, *, sigma=10.0, base=2.0, mask=None):
    """Entropy of the entries of the diffusion matrix of ``x`` ``[n, d]``.

    ``H = -sum_ij p_ij log_b p_ij`` with ``p_ij = |P_ij| / sum_kl |P_kl|``,
    ``P = D^-1 K``, ``K = D_G^-1/2 G D_G^-1/2`` and ``G`` the Gaussian affinity of
    bandwidth ``sigma``. ``0 <= H <= log_b n^2``.

    Args:
      x: ``[n, d]`` points.
      sigma: Gaussian bandwidth, a positive number (may be traced) or a rule
        (see :mod:`jaxdse.kernels.points`).
      base: logarithm base; 2 (default) gives bits.
      mask: optional ``[n]`` bool; the result equals the call on ``x[mask]``.

    Returns:
      Scalar entropy in units of ``base``.

    Raises:
      TypeError/ValueError naming the argument for bad input; MemoryError above
      :func:`jaxdse.get_memory_budget`.

    Works under ``jit`` (mask presence and a string ``sigma`` static) and
    ``vmap``. With the defaults it equals
    ``dse_dsmi.diffusion_spectral_entropy(x, matrix_entry_entropy=True)`` to
    1e-6 bits in float64.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(8.0).reshape(4, 2) * 100.0  # far apart: P = I
    >>> float(matrix_entry_entropy(x))  # 4 equal entries: log2(4)
    2.0
    """
    x, bandwidth, base, mask = _check_common(x, sigma, base, mask)
    return masked_matrix_entry_entropy(prepare_points(x, bandwidth, mask), mask, base=base)


def masked_matrix_entry_entropy(points: ScaledPoints, mask, *, base=2.0):
    """Unchecked core of :func:`matrix_entry_entropy` on prepared points; ``mask`` may be None."""
    keep = jnp.ones(points.points.shape[0], bool) if mask is None else mask
    S, v = dense_symmetric_operator(points, 0.5, keep)
    # P = D^-1/2 S D^1/2, and v is proportional to D^1/2 (0 on dropped rows).
    kept = v > 0
    v_safe = jnp.where(kept, v, 1.0)
    P = jnp.where(kept[:, None], S * v[None, :] / v_safe[:, None], 0.0)
    return _finite_or_nan(entropy_of_spectrum(P.reshape(-1), 1.0, base), points, mask)


def adjacency_spectral_entropy(x, *, kind: str = "gaussian", knn: int = 10, sigma=10.0, base=2.0, mask=None):
    """Entropy of the eigenvalue magnitudes of an adjacency matrix of ``x`` ``[n, d]``.

    ``H = -sum_i p_i log_b p_i`` with ``p_i = |lambda_i| / sum_j |lambda_j|`` and
    ``lambda`` the eigenvalues of

    * ``kind="knn"``: ``A_ij = 1`` if ``||x_i - x_j|| <= r_i``, else 0, where
      ``r_i`` is the ``knn``-th smallest distance from ``x_i`` counting ``x_i``
      itself (so each row has ``knn`` ones, more with ties). ``A`` is not
      symmetric; its eigenvalues are complex and ``|lambda|`` is the modulus;
    * ``kind="gaussian"`` (default, as in the reference): the affinity ``G``;
    * ``kind="anisotropic"``: ``D_G^-1/2 G D_G^-1/2``.

    Args:
      x: ``[n, d]`` points.
      kind: ``"knn"``, ``"gaussian"`` or ``"anisotropic"`` (static).
      knn: neighbours per row for ``kind="knn"``, ``1 <= knn <= n`` (static).
      sigma: Gaussian bandwidth for the other kinds (number or rule).
      base: logarithm base; 2 (default) gives bits.
      mask: optional ``[n]`` bool; the result equals the call on ``x[mask]``.

    Returns:
      Scalar entropy in units of ``base``, ``0 <= H <= log_b n``.

    Raises:
      TypeError/ValueError naming the argument for bad input; MemoryError above
      :func:`jaxdse.get_memory_budget`.

    Works under ``jit`` (``kind``, ``knn``, mask presence static) and ``vmap``.
    ``kind="knn"`` needs a general (non-symmetric) eigensolver, which jax runs on
    CPU only, and is not differentiable. Equals
    ``dse_dsmi.adjacency_spectral_entropy(x, use_knn=..., anisotropic=..., knn=...)``
    to 1e-6 bits in float64. For ``kind="knn"`` that holds with both on a
    single-threaded BLAS (then they agree to about 1e-12): the kNN matrix is
    often defective, its zero eigenvalues are rounding noise, and a
    multi-threaded BLAS (or a permutation of the rows) moves either value by up
    to about 1e-5 bits.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(8.0).reshape(4, 2) * 100.0  # far apart: G = I
    >>> float(adjacency_spectral_entropy(x))
    2.0
    """
    _checks.check_choice(kind, "kind", KINDS)
    knn = _checks.check_int(knn, "knn")
    x, bandwidth, base, mask = _check_common(x, sigma, base, mask)
    if kind == "knn":
        n_kept = x.shape[0] if mask is None or not _checks.is_concrete(mask) else int(jnp.sum(mask))
        if knn > n_kept:
            raise ValueError(f"knn must be <= the number of (kept) points {n_kept}, got {knn}")
        return masked_knn_adjacency_entropy(x, mask, knn=knn, base=base)
    return masked_adjacency_spectral_entropy(prepare_points(x, bandwidth, mask), mask, kind=kind, base=base)


def masked_adjacency_spectral_entropy(points: ScaledPoints, mask, *, kind="gaussian", base=2.0):
    """Unchecked core of :func:`adjacency_spectral_entropy` for the Gaussian kinds, on prepared points."""
    keep = jnp.ones(points.points.shape[0], bool) if mask is None else mask
    if kind == "gaussian":
        A = affinity_matrix(points, keep)
    else:
        A = dense_symmetric_operator(points, 0.0, keep)[0]
    lam = symmetric_eigvals(A, "tridiagonal")
    return _finite_or_nan(entropy_of_spectrum(lam, 1.0, base), points, mask)


def masked_knn_adjacency_entropy(x, mask, *, knn=10, base=2.0):
    """Unchecked core of :func:`adjacency_spectral_entropy` for ``kind="knn"`` (raw points)."""
    keep = jnp.ones(x.shape[0], bool) if mask is None else mask
    ok = jnp.all(jnp.where(keep[:, None], jnp.isfinite(x), True)) & (jnp.sum(keep) >= 2)
    lam = jnp.abs(_linalg.eigvals(knn_adjacency(jnp.where(ok, x, 0.0), knn, mask)))
    return jnp.where(ok, entropy_of_spectrum(lam, 1.0, base), jnp.nan)


def knn_adjacency(x, knn: int, mask=None):
    """Binary ``[n, n]``: row i marks the points within its ``knn``-th smallest distance (self included)."""
    n = x.shape[0]
    keep = jnp.ones(n, bool) if mask is None else mask
    # Ties decide which neighbours count, so distances must be exact where they
    # can be: shifting by one kept point (not by the mean, as
    # pairwise_sq_distances does) keeps integer data (pixels) integer, and the
    # squared distances are then exact, as in the reference.
    xs = x - x[jnp.argmax(keep)]
    sq = jnp.sum(xs * xs, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * jnp.matmul(xs, xs.T, precision=HIGHEST), 0.0)
    d2 = jnp.where(jnp.eye(n, dtype=bool), 0.0, d2)
    d2 = jnp.where(keep[None, :], d2, jnp.inf)
    kth = -jax.lax.top_k(-d2, knn)[0][:, knn - 1]
    return ((d2 <= kth[:, None]) & keep[:, None] & keep[None, :]).astype(x.dtype)

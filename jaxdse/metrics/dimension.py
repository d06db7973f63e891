"""Effective dimensions of a representation: RankMe, the participation ratio, alpha-ReQ.

- :func:`rankme`: exp of the entropy of the normalised singular values
  (Garrido et al. 2023), a count of effective dimensions.
- :func:`participation_ratio`: ``(sum lambda)^2 / sum lambda^2`` of the
  covariance spectrum, another effective dimension.
- :func:`alpha_req`: the decay exponent of the covariance spectrum,
  ``lambda_k ~ k^-alpha`` (Agrawal et al. 2022).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxdse import _checks
from jaxdse.entropy.spectral import entropy_of_spectrum
from jaxdse.kernels.points import HIGHEST
from jaxdse.solvers import _linalg
from jaxdse.solvers._linalg import symmetric_eigvals

__all__ = ["alpha_req", "participation_ratio", "rankme"]


def _weights(mask, n, dtype):
    return jnp.ones(n, dtype) if mask is None else mask.astype(dtype)


def _gram_spectrum(x, mask, center):
    """Eigenvalues, descending, of ``X^T X / m`` (``X`` the kept rows, centred if asked).

    Computed from the smaller of the ``d x d`` and ``n x n`` Gram matrices (they
    share their nonzero eigenvalues); masked rows are zero rows.
    """
    n, d = x.shape
    w = _weights(mask, n, x.dtype)
    m = jnp.sum(w)
    if center:
        x = x - jnp.sum(w[:, None] * x, axis=0) / m
    x = w[:, None] * x
    if d <= n:
        gram = jnp.matmul(x.T, x, precision=HIGHEST)
    else:
        gram = jnp.matmul(x, x.T, precision=HIGHEST)
    lam = symmetric_eigvals(gram / m, "eigh")[::-1]
    return jnp.maximum(lam, 0.0), m


def rankme(x, *, mask=None, center: bool = False):
    """RankMe: ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / sum_j s_j``, ``s`` the singular values of ``x``.

    The exponential of the Shannon entropy of the normalised singular values
    (Garrido, Balestriero, Najman and LeCun, "RankMe", ICML 2023), a smooth count
    of the dimensions the features use: between 1 (rank one) and ``min(n, d)``
    (all singular values equal). Zero singular values contribute 0 (the paper
    adds 1e-7 to every ``p_k``; here they are dropped exactly). Unitless.

    Args:
      x: ``[n, d]`` features.
      mask: optional ``[n]`` bool; equals ``rankme(x[mask])``.
      center: subtract the (kept rows') mean first; the paper does not.

    Returns:
      Scalar in ``[1, min(n, d)]``; NaN if ``x`` is all zeros or (under jit) not finite.

    Raises:
      TypeError/ValueError naming ``x`` or ``mask`` (shape, dtype, non-finite values).

    >>> import jax.numpy as jnp
    >>> round(float(rankme(jnp.eye(4)[:, :3] * 2.0)), 4)
    3.0
    """
    x = _checks.as_points(x)
    mask = _checks.check_mask(mask, x.shape[0])
    if center:
        w = _weights(mask, x.shape[0], x.dtype)
        x = x - jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
    if mask is not None:
        x = jnp.where(mask[:, None], x, 0.0)  # zero rows leave the singular values unchanged
    # From the singular values themselves (squaring them through a Gram matrix loses half the digits).
    singular_values = _linalg.singular_values(x)
    return jnp.exp(entropy_of_spectrum(singular_values, 1.0, jnp.e))


def participation_ratio(x, *, mask=None):
    """Participation ratio ``(sum_k lambda_k)^2 / sum_k lambda_k^2`` of the covariance of ``x``.

    ``lambda`` are the eigenvalues of the covariance ``C = X_c^T X_c / m`` of the
    kept rows, centred; computed as ``tr(C)^2 / tr(C^2)`` (no eigendecomposition).
    An effective dimension (Gao et al. 2017; Recanatesi et al. 2019): 1 for
    features on a line, ``k`` for ``k`` equal-variance directions. Unitless.

    Args:
      x: ``[n, d]`` features.
      mask: optional ``[n]`` bool; equals ``participation_ratio(x[mask])``.

    Returns:
      Scalar in ``[1, min(n - 1, d)]``; NaN if all kept rows are equal or (under jit) not finite.

    Raises:
      TypeError/ValueError naming ``x`` or ``mask``.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> round(float(participation_ratio(x)), 4)
    2.0
    """
    x = _checks.as_points(x)
    mask = _checks.check_mask(mask, x.shape[0])
    n, d = x.shape
    w = _weights(mask, n, x.dtype)
    m = jnp.sum(w)
    xc = w[:, None] * (x - jnp.sum(w[:, None] * x, axis=0) / m)
    small = xc.T if d <= n else xc
    gram = jnp.matmul(small, small.T, precision=HIGHEST) / m
    trace = jnp.trace(gram)
    return jnp.where(trace > 0, trace**2 / jnp.sum(gram * gram), jnp.nan)


def alpha_req(x, *, mask=None, fit_range: tuple[int, int | None] = (1, None)):
    """alpha-ReQ: the exponent ``alpha`` of a power-law fit ``lambda_k ~ k^-alpha`` to the covariance spectrum.

    ``lambda_1 >= lambda_2 >= ...`` are the eigenvalues of the covariance of the
    kept rows (centred). ``alpha`` is minus the least-squares slope of
    ``log lambda_k`` against ``log k`` over the ranks ``k_min <= k <= k_max``
    (Agrawal, Mondal, Ghosh and Richards, "alpha-ReQ", NeurIPS 2022). Larger
    alpha: faster decay, fewer effective dimensions; white features give about
    0. Unitless.

    Args:
      x: ``[n, d]`` features.
      mask: optional ``[n]`` bool; equals ``alpha_req(x[mask])``.
      fit_range: static ``(k_min, k_max)``, 1-based and inclusive. The fit
        stops at ``k_max``, at ``min(d, m - 1)`` for ``m`` kept rows and at the
        numerical rank (the number of eigenvalues above
        ``lambda_1 * max(n, d) * eps``), whichever comes first: zero directions
        (e.g. dead ReLU units) are left out. ``k_max=None`` (default): no
        further cap.

    Returns:
      Scalar exponent. NaN if fewer than two ranks are fitted (features of
      rank one, ``k_min`` at or above the rank) or (under jit) ``x`` is not
      finite.

    Raises:
      TypeError/ValueError naming ``x``, ``mask`` or ``fit_range`` (which needs
      ``1 <= k_min < k_max``).

    >>> import jax.numpy as jnp
    >>> k = jnp.arange(1.0, 5.0)
    >>> x = jnp.concatenate([jnp.diag(1.0 / k), -jnp.diag(1.0 / k)])   # variances proportional to k^-2
    >>> round(float(alpha_req(x)), 4)
    2.0
    """
    x = _checks.as_points(x)
    mask = _checks.check_mask(mask, x.shape[0])
    k_min, k_max = _check_fit_range(fit_range)
    n, d = x.shape
    lam, m = _gram_spectrum(x, mask, center=True)
    k = jnp.arange(1, lam.shape[0] + 1, dtype=x.dtype)
    # Numerical rank: eigenvalues above lambda_1 * max(n, d) * eps (the rounding error of the spectrum).
    tolerance = lam[0] * max(n, d) * jnp.finfo(x.dtype).eps
    rank = jnp.sum(lam > tolerance).astype(x.dtype)
    top = jnp.minimum(jnp.minimum(jnp.asarray(min(d, n - 1), x.dtype), m - 1), rank)
    if k_max is not None:
        top = jnp.minimum(top, k_max)
    fitted = (k >= k_min) & (k <= top)
    log_lam = jnp.log(jnp.where(fitted, lam, 1.0))
    log_k = jnp.log(k)
    w = fitted.astype(x.dtype)
    count = jnp.sum(w)
    mean_k = jnp.sum(w * log_k) / count
    mean_l = jnp.sum(w * log_lam) / count
    cov = jnp.sum(w * (log_k - mean_k) * (log_lam - mean_l))
    var = jnp.sum(w * (log_k - mean_k) ** 2)
    return jnp.where(count >= 2, -cov / jnp.where(var > 0, var, 1.0), jnp.nan)


def _check_fit_range(fit_range):
    if not isinstance(fit_range, tuple) or len(fit_range) != 2:
        raise ValueError(f"fit_range must be a tuple (k_min, k_max), got {fit_range!r}")
    k_min = _checks.check_int(fit_range[0], "fit_range: k_min")
    k_max = None if fit_range[1] is None else _checks.check_int(fit_range[1], "fit_range: k_max", minimum=k_min + 1)
    return k_min, k_max

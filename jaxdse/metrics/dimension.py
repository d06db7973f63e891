"""Peer measures of a representation, beside DSE and DSMI.

Each takes points ``[n, d]`` first (one layer's features on a probe set),
settings keyword-only and an optional row ``mask`` ``[n]`` (a masked call equals
the call on the kept rows). All are pure and work eagerly and under
``jax.jit``, ``jax.vmap`` and ``jax.grad``; bad arguments raise before tracing,
and invalid values seen only under ``jit`` give NaN.

- :func:`rankme`: exp of the entropy of the normalised singular values
  (Garrido et al. 2023), a count of effective dimensions.
- :func:`participation_ratio`: ``(sum lambda)^2 / sum lambda^2`` of the
  covariance spectrum, another effective dimension.
- :func:`alpha_req`: the decay exponent of the covariance spectrum,
  ``lambda_k ~ k^-alpha`` (Agrawal et al. 2022).
- :func:`renyi_entropy` and :func:`renyi_mutual_information`: matrix-based
  Renyi alpha-entropy of a unit-trace Gram matrix (Giraldo, Rao and Principe
  2014), in bits.

The probes (held-out accuracy of a classifier on the features) and the
evaluator that computes every measure from the same features live in
:mod:`jaxdse.probes`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.entropy.spectral import entropy_of_spectrum
from jaxdse.kernels.points import HIGHEST, gaussian_affinity
from jaxdse.solvers import _linalg
from jaxdse.solvers._linalg import symmetric_eigvals


__all__ = ["alpha_req", "participation_ratio", "rankme", "renyi_entropy", "renyi_mutual_information"]


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


def renyi_of_spectrum(lam, alpha, base):
    """Renyi alpha-entropy ``log_b(sum p^alpha) / (1 - alpha)`` of ``p = lam / sum lam`` (alpha = 1: Shannon)."""
    lam = jnp.maximum(lam, 0.0)
    p = lam / jnp.sum(lam, axis=-1, keepdims=True)
    positive = p > 0
    log_p = jnp.log(jnp.where(positive, p, 1.0))
    alpha = jnp.asarray(alpha, p.dtype)
    near_one = jnp.abs(alpha - 1.0) < 1e-6
    a = jnp.where(near_one, 2.0, alpha)
    renyi = jax.nn.logsumexp(jnp.where(positive, a * log_p, -jnp.inf), axis=-1) / (1.0 - a)
    shannon = -jnp.sum(jnp.where(positive, p * log_p, 0.0), axis=-1)
    h = jnp.where(near_one, shannon, renyi) / jnp.log(jnp.asarray(base, p.dtype))
    valid = (alpha > 0) & (jnp.asarray(base) > 0) & (jnp.asarray(base) != 1)
    return jnp.where(valid, h, jnp.nan)


def _unit_trace_spectrum(gram):
    """Eigenvalues of ``gram / tr(gram)``."""
    return symmetric_eigvals(gram / jnp.trace(gram), "eigh")


def _label_gram(y, mask):
    same = (y[:, None] == y[None, :]).astype(_checks.float_dtype())
    if mask is not None:
        same = jnp.where(mask[:, None] & mask[None, :], same, 0.0)
    return same


def _check_renyi_alpha(alpha):
    alpha = _checks._scalar(alpha, "alpha")
    if np.ndim(alpha) != 0:
        raise ValueError(f"alpha must be a scalar, got shape {np.shape(alpha)}")
    if _checks.is_concrete(alpha) and not (np.isfinite(float(alpha)) and float(alpha) > 0):
        raise ValueError(f"alpha must be positive and finite (1 gives the von Neumann entropy), got {alpha!r}")
    return alpha


def renyi_entropy(x, *, alpha=2.0, sigma=10.0, base=2.0, mask=None):
    """Matrix-based Renyi alpha-entropy ``S_alpha(A) = log_b(sum_i lambda_i(A)^alpha) / (1 - alpha)``.

    ``A = G / tr(G)``, ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`` the Gaussian
    Gram matrix of the kept rows, so that ``A`` has unit trace and its
    eigenvalues form a distribution (Giraldo, Rao and Principe, "Measures of
    entropy from data using infinitely divisible kernels", IEEE Trans. Inf.
    Theory 2015, arXiv 1211.2459). ``alpha = 1`` gives the von Neumann entropy
    ``-sum lambda log lambda``. In bits by default; ``0 <= S <= log_b m``.

    Args:
      x: ``[n, d]`` points.
      alpha: order, > 0 (traced).
      sigma: Gaussian bandwidth, > 0 (traced); the paper's DSE default 10.
      base: log base; 2 gives bits, ``e`` nats.
      mask: optional ``[n]`` bool; equals ``renyi_entropy(x[mask])``.

    Returns:
      Scalar; NaN under jit for non-positive alpha or sigma or non-finite ``x``.

    Raises:
      TypeError/ValueError naming ``x``, ``mask``, ``alpha``, ``sigma`` or ``base``.

    >>> import jax.numpy as jnp
    >>> round(float(renyi_entropy(jnp.eye(4) * 100.0)), 4)   # far-apart points: log2 4
    2.0
    """
    x = _checks.as_points(x)
    mask = _checks.check_mask(mask, x.shape[0])
    alpha = _check_renyi_alpha(alpha)
    sigma = _checks.check_positive(sigma, "sigma")
    base = _checks.check_base(base)
    lam = _unit_trace_spectrum(gaussian_affinity(x, sigma=sigma, mask=mask))
    return jnp.where(sigma > 0, renyi_of_spectrum(lam, alpha, base), jnp.nan)


def renyi_mutual_information(x, y, *, alpha=2.0, sigma=10.0, sigma_y=None, base=2.0, mask=None):
    """Matrix-based Renyi mutual information ``I_alpha(X; Y) = S(A_x) + S(A_y) - S(A_xy)``.

    ``A_x``, ``A_y`` are unit-trace Gram matrices of ``x`` and ``y`` (see
    :func:`renyi_entropy`) and ``A_xy = (A_x o A_y) / tr(A_x o A_y)`` their
    normalised Hadamard product, the joint (Giraldo, Rao and Principe 2015).
    Integer labels ``y`` ``[n]`` use the label kernel ``1[y_i = y_j]``, so ``C``
    balanced classes give ``S(A_y) = log_b C``; points ``y`` ``[n, d']`` use a
    Gaussian kernel of bandwidth ``sigma_y``. In bits by default.

    Args:
      x: ``[n, d]`` points.
      y: integer labels ``[n]`` or points ``[n, d']`` for the same samples.
      alpha: order, > 0 (traced; 1 is von Neumann).
      sigma: bandwidth of ``x``'s kernel; ``sigma_y`` of ``y``'s (default: ``sigma``).
      base: log base; 2 gives bits.
      mask: optional ``[n]`` bool; equals the call on the kept rows.

    Returns:
      Scalar; 0 when ``y`` is one class (then ``A_xy = A_x``); ``S(A_x)`` when
      every sample has its own label. NaN under jit for invalid values.

    Raises:
      TypeError/ValueError naming the argument (shapes, dtypes, lengths, values).

    >>> import jax.numpy as jnp
    >>> x = jnp.eye(4) * 100.0                         # four far-apart points
    >>> round(float(renyi_mutual_information(x, jnp.array([0, 0, 1, 1]))), 4)   # log2 of 2 classes
    1.0
    """
    x = _checks.as_points(x)
    n = x.shape[0]
    mask = _checks.check_mask(mask, n)
    alpha = _check_renyi_alpha(alpha)
    sigma = _checks.check_positive(sigma, "sigma")
    sigma_y = sigma if sigma_y is None else _checks.check_positive(sigma_y, "sigma_y")
    base = _checks.check_base(base)
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"y must be integer labels [n] or points [n, d'], got {type(y).__name__}")
    y_shape = np.shape(y)
    y_dtype = getattr(y, "dtype", None) or np.asarray(y).dtype
    if len(y_shape) == 1 and np.issubdtype(np.dtype(y_dtype), np.integer):
        if y_shape[0] != n:
            raise ValueError(f"y has {y_shape[0]} rows but x has n={n}; they must describe the same samples")
        gram_y = _label_gram(jnp.asarray(y), mask).astype(x.dtype)
    else:
        y = _checks.as_points(y, "y")
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} rows but x has n={n}; they must describe the same samples")
        gram_y = gaussian_affinity(y, sigma=sigma_y, mask=mask)
    gram_x = gaussian_affinity(x, sigma=sigma, mask=mask)
    a_x, a_y = gram_x / jnp.trace(gram_x), gram_y / jnp.trace(gram_y)
    spectra = jnp.stack([_unit_trace_spectrum(a) for a in (a_x, a_y, a_x * a_y)])
    h_x, h_y, h_xy = renyi_of_spectrum(spectra, alpha, base)
    valid = (jnp.asarray(sigma) > 0) & (jnp.asarray(sigma_y) > 0)
    return jnp.where(valid, h_x + h_y - h_xy, jnp.nan)

"""Matrix-based Renyi entropy and mutual information of a representation.

:func:`renyi_entropy` and :func:`renyi_mutual_information`: the Renyi
alpha-entropy of a unit-trace Gram matrix (Giraldo, Rao and Principe 2014) and
the mutual information built from it, in bits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.kernels.points import gaussian_affinity
from jaxdse.solvers._linalg import symmetric_eigvals

__all__ = ["renyi_entropy", "renyi_mutual_information"]


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

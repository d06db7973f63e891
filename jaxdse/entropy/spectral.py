"""Spectrum -> entropy.

``p_i = |lambda_i|^t / sum_j |lambda_j|^t`` and ``H = -sum_i p_i log_b p_i``.

It is computed in log space, with ``u_i = t log|lambda_i| - max_j t log|lambda_j|``,
``H = log sum_i e^{u_i} - sum_i p_i u_i``, so that large t and tiny eigenvalues
neither overflow nor underflow. Eigenvalues that are exactly 0 (padding, masked
rows) contribute 0 and get a zero gradient ("double where": the log's input is
guarded before the log and the term masked after it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks


def spectral_entropy(eigenvalues, *, t=1.0, base=2.0):
    """Entropy of the normalised powered spectrum ``|lambda|^t``.

    Args:
      eigenvalues: ``[..., n]`` real eigenvalues (signs are ignored).
      t: diffusion time, > 0; a scalar, or an array ``[*T]`` of many times to get
        one entropy per time from the same spectrum (a cheap t sweep).
      base: logarithm base; 2 (default) gives bits, ``e`` gives nats.

    Returns:
      Array of shape ``[*T, ...]``: t's shape followed by the batch shape of
      ``eigenvalues``. A spectrum with no nonzero value gives NaN.

    Values smaller than the largest by more than the smallest normal number's
    ratio (about 1e-38 in float32) count as 0. Differentiable in the eigenvalues
    and in t; zero and subnormal eigenvalues get gradient 0.

    >>> import jax.numpy as jnp
    >>> float(spectral_entropy(jnp.array([1.0, 1.0, 0.0, 0.0])))
    1.0
    >>> spectral_entropy(jnp.array([1.0, 0.5]), t=jnp.array([1.0, 2.0])).shape
    (2,)
    """
    lam = jnp.asarray(_checks.as_array(eigenvalues, "eigenvalues"))
    if not (jnp.issubdtype(lam.dtype, jnp.floating) or jnp.issubdtype(lam.dtype, jnp.integer)):
        raise TypeError(f"eigenvalues must be a real array, got dtype {lam.dtype}")
    if lam.ndim < 1 or lam.shape[-1] == 0:
        raise ValueError(f"eigenvalues must have shape [..., n] with n >= 1, got {lam.shape}")
    if _checks.is_concrete(lam) and not _checks.all_finite(lam):
        raise ValueError("eigenvalues contains non-finite values")
    if lam.dtype.itemsize < 4:
        lam = lam.astype(_checks.float_dtype())
    t = _checks.check_positive(t, "t", allow_array=True)
    base = _checks.check_base(base)
    return entropy_of_spectrum(lam, t, base)


def entropy_of_spectrum(lam, t, base):
    """Unchecked core of :func:`spectral_entropy` (invalid traced t/base give NaN)."""
    lam = jnp.asarray(lam)
    if not jnp.issubdtype(lam.dtype, jnp.floating):
        lam = lam.astype(_checks.float_dtype())
    t = jnp.asarray(t, lam.dtype)
    t_shape = t.shape
    t = t.reshape(t_shape + (1,) * lam.ndim)
    normal = jnp.abs(lam) >= jnp.finfo(lam.dtype).tiny
    log_abs = jnp.log(jnp.where(normal, jnp.abs(lam), 1.0))
    # Subnormal magnitudes: arithmetic may flush them to zero (XLA on CPU does),
    # so their logarithm is read from the bits, |lambda| = m 2^(minexp - nmant)
    # with m the integer below the sign bit. They get gradient 0.
    info = jnp.finfo(lam.dtype)
    bits = jax.lax.bitcast_convert_type(lam, jnp.dtype(f"uint{8 * lam.dtype.itemsize}"))
    m_int = bits & ((1 << (8 * lam.dtype.itemsize - 1)) - 1)
    subnormal = (m_int > 0) & (m_int < (1 << info.nmant))
    log_sub = jnp.log(jnp.where(subnormal, m_int, 1).astype(lam.dtype)) + (info.minexp - info.nmant) * np.log(2.0)
    log_abs = jnp.where(subnormal, jax.lax.stop_gradient(log_sub), log_abs)
    # A value below the smallest normal number relative to the largest is rounding, not
    # spectrum, and weighs nothing (at t = 0.01 it would weigh 0.4 against 1); all-equal
    # subnormal values are a uniform spectrum like any other.
    present = normal | subnormal
    top = jax.lax.stop_gradient(jnp.max(jnp.where(present, log_abs, -jnp.inf), axis=-1, keepdims=True))
    nonzero = present & (log_abs - top >= np.log(info.tiny))
    # u_i = log(|lambda_i|^t) - max_j log(|lambda_j|^t): the shift cancels in H and
    # keeps the sums free of cancellation between large logarithms.
    log_w = jnp.where(nonzero, t * log_abs, -jnp.inf)
    m = jnp.max(log_w, axis=-1, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
    u = jnp.where(nonzero, log_w - m, 0.0)
    e = jnp.where(nonzero, jnp.exp(u), 0.0)
    s = jnp.sum(e, axis=-1)
    s_safe = jnp.where(s > 0, s, 1.0)
    p = e / s_safe[..., None]
    # H = -sum p (u - log s) = log s - sum p u; NaN for an all-zero spectrum.
    h = jnp.where(s > 0, jnp.log(s_safe) - jnp.sum(p * u, axis=-1), jnp.nan)
    h = h / jnp.log(jnp.asarray(base, lam.dtype))
    # NaN for invalid t or base, and for a spectrum holding NaN or inf (under jit).
    valid = (t[..., 0] > 0) & jnp.isfinite(t[..., 0]) & _checks.valid_base(base) & jnp.all(jnp.isfinite(lam), axis=-1)
    return jnp.where(valid, h, jnp.nan)


def max_entropy(n: int, base: float = 2.0) -> float:
    """The upper bound ``log_b n`` of the entropy of ``n`` eigenvalues."""
    return float(np.log(n) / np.log(base))

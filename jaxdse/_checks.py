"""Argument checks shared by the public functions.

Everything here runs in Python before tracing. Shapes and dtypes are always
visible; values are checked only when they are concrete (not jax tracers), so
that the same functions work eagerly and under ``jit``/``vmap``.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(value) -> bool:
    """True when ``value`` holds data we can inspect (not a tracer)."""
    return not isinstance(value, jax.core.Tracer)


def all_finite(arr) -> bool:
    """Whether a concrete array is all finite (evaluated now, also while tracing)."""
    with jax.ensure_compile_time_eval():
        return bool(jnp.all(jnp.isfinite(arr)))


def count_true(mask) -> int:
    """Number of True entries of a concrete boolean array."""
    with jax.ensure_compile_time_eval():
        return int(jnp.sum(mask))


def float_dtype():
    """The floating dtype jax uses by default (float64 under x64 mode)."""
    return jnp.result_type(float)


def as_points(x, name: str = "x", *, min_rows: int = 2):
    """Validate a point set ``[n, d]`` and return it as a floating jax array."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numeric array of shape [n, d], got {type(x).__name__}")
    shape = np.shape(x)
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(x).dtype
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array of shape [n, d]: {err}") from None
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"{name} must have a real numeric dtype (integer or float), got {dtype}")
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D with shape [n, d], got shape {tuple(shape)}")
    n, d = shape
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got n={n}")
    if d == 0:
        raise ValueError(f"{name} needs at least one feature column, got d=0")
    if is_concrete(x):
        # Concrete data (also a constant closed over by a jitted function) is
        # checked now: numpy on the host, a jax array on its device.
        if isinstance(x, jax.Array):
            with jax.ensure_compile_time_eval():
                bad = int(jnp.sum(~jnp.isfinite(x)))
        else:
            bad = int(np.sum(~np.isfinite(np.asarray(x))))
        if bad:
            raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    if np.issubdtype(dtype, np.floating) and dtype.itemsize >= 4:
        arr = jnp.asarray(x)
    else:
        arr = jnp.asarray(x, dtype=float_dtype())
    return arr


def check_mask(mask, n: int, name: str = "mask"):
    """Validate a row mask ``[n]`` of booleans; returns a bool array or None."""
    if mask is None:
        return None
    shape = np.shape(mask)
    if shape != (n,):
        raise ValueError(f"{name} must have shape [n]=({n},) to match x, got {tuple(shape)}")
    dtype = np.dtype(mask.dtype if hasattr(mask, "dtype") else np.asarray(mask).dtype)
    if dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {dtype}")
    mask = jnp.asarray(mask)
    if is_concrete(mask):
        kept = count_true(mask)
        if kept < 2:
            raise ValueError(f"{name} must keep at least 2 rows, it keeps {kept}")
    return mask


def _scalar(value, name: str):
    """Return a python float if concrete scalar, else the (traced) array."""
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be a real number or a real array, got {type(value).__name__}")
    return value


def check_positive(value, name: str, *, allow_array: bool = False):
    """``value > 0`` (checked when concrete). Arrays allowed if ``allow_array``."""
    value = _scalar(value, name)
    if not allow_array and np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    if is_concrete(value):
        v = np.asarray(value)
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def check_alpha(alpha, name: str = "alpha"):
    alpha = _scalar(alpha, name)
    if np.ndim(alpha) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(alpha)}")
    if is_concrete(alpha) and not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {alpha!r}")
    return alpha


def check_base(base, name: str = "base"):
    base = _scalar(base, name)
    if np.ndim(base) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(base)}")
    if is_concrete(base):
        b = float(base)
        if not np.isfinite(b) or b <= 0 or b == 1:
            raise ValueError(f"{name} must be positive and not 1 (2 gives bits, e gives nats), got {base!r}")
    return base


def check_choice(value, name: str, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value

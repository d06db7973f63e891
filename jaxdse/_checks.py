"""Argument checks shared by the public functions.

Everything here runs in Python before tracing. Shapes and dtypes are always
visible; values are checked only when they are concrete (not jax tracers), so
that the same functions work eagerly and under ``jit``/``vmap``. Every error
names the argument and says what it got.
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


def as_array(x, name: str):
    """Any array-like as a numpy or jax array, without copying device data.

    Accepts numpy and jax arrays, nested lists, pandas DataFrames/Series (their
    numeric values) and torch tensors (through DLPack, so a CUDA tensor stays on
    its GPU when jax runs there; a tensor that needs a gradient is detached).
    No hard dependency on pandas or torch: they are recognised by duck typing.
    """
    if isinstance(x, (str, bytes)) or x is None or isinstance(x, dict):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array; pass x[~m] for the rows you keep, or mask=")
    if isinstance(x, (jax.Array, np.ndarray)) or not is_concrete(x):
        return x
    module = type(x).__module__
    if module.startswith("torch"):
        tensor = x.detach() if getattr(x, "requires_grad", False) else x
        try:
            return jax.dlpack.from_dlpack(tensor)
        except Exception:  # a device jax does not run on, or an odd layout
            return np.asarray(tensor.cpu())
    if module.startswith("pandas"):
        values = x.select_dtypes("number") if hasattr(x, "select_dtypes") else x
        if hasattr(x, "columns") and values.shape[1] != x.shape[1]:
            dropped = [str(c) for c in x.columns if c not in values.columns]
            raise TypeError(f"{name} has non-numeric columns {dropped}; select the numeric ones")
        return values.to_numpy()
    try:
        return np.asarray(x)
    except ValueError as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a rectangular numeric array: {' '.join(str(err).split())}") from None


def as_points(x, name: str = "x", *, min_rows: int = 2, mask=None):
    """Validate a point set ``[n, d]`` and return it as a floating jax array.

    Arrays of higher rank ``[n, ...]`` (images ``[n, h, w, c]``) are flattened
    to ``[n, h*w*c]``, as the command line does. Concrete values are checked to
    be finite on the rows that ``mask`` keeps (all rows without a mask).
    """
    x = as_array(x, name)
    dtype = np.dtype(x.dtype)
    # jnp.issubdtype knows bfloat16 (np.issubdtype does not count it as floating).
    if dtype == np.bool_ or not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise TypeError(f"{name} must have a real numeric dtype (integer or float), got {dtype}")
    shape = np.shape(x)
    if len(shape) < 2:
        raise ValueError(f"{name} must have shape [n, d] (one row per sample), got shape {tuple(shape)}")
    if len(shape) > 2:
        x = jnp.reshape(x, (shape[0], -1))
    n, d = x.shape
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got n={n}")
    if d == 0:
        raise ValueError(f"{name} needs at least one feature column, got d=0")
    if is_concrete(x):
        # Concrete data (also a constant closed over by a jitted function) is
        # checked now; rows a concrete mask drops may hold anything.
        with jax.ensure_compile_time_eval():
            bad_rows = ~jnp.all(jnp.isfinite(jnp.asarray(x)), axis=1)
            if mask is not None and is_concrete(mask):
                bad_rows = bad_rows & jnp.asarray(mask)
            bad = int(jnp.sum(bad_rows))
        if bad:
            raise ValueError(f"{name} has {bad} row(s) with non-finite values (NaN or inf)")
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize >= 4:
        return jnp.asarray(x)
    return jnp.asarray(x, dtype=float_dtype())  # integers, float16 and bfloat16: the default float dtype


def check_mask(mask, n: int, name: str = "mask", *, min_kept: int = 2):
    """Validate a row mask ``[n]`` of booleans; returns a bool array or None.

    A traced mask gets its shape and dtype checked; its values cannot be (the
    callers make the result NaN when it keeps too few rows).
    """
    if mask is None:
        return None
    mask = as_array(mask, name)
    if np.shape(mask) != (n,):
        raise ValueError(f"{name} must have shape [n]=({n},) to match x, got {tuple(np.shape(mask))}")
    if np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {mask.dtype}")
    mask = jnp.asarray(mask)
    if is_concrete(mask):
        kept = count_true(mask)
        if kept < min_kept:
            raise ValueError(f"{name} must keep at least {min_kept} rows, it keeps {kept}")
    return mask


def check_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A Python integer in ``[minimum, maximum]`` (a static setting: shapes depend on it)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}")
    return int(value)


def as_key(key, name: str = "key"):
    """A ``jax.random`` key from a key or an integer seed (as ``random_state``)."""
    if isinstance(key, bool):
        raise TypeError(f"{name} must be a jax.random key or an integer seed, got {key!r}")
    if isinstance(key, (numbers.Integral, np.integer)):
        if not 0 <= key < 2**63:
            raise ValueError(f"{name}: an integer seed must be in [0, 2**63), got {key}")
        return jax.random.key(int(key))
    if isinstance(key, (jax.Array, np.ndarray)) or not is_concrete(key):
        dtype = key.dtype
        if jnp.issubdtype(dtype, jax.dtypes.prng_key) and key.ndim == 0:
            return key
        if dtype == np.uint32 and key.shape == (2,):  # a legacy jax.random.PRNGKey
            return jnp.asarray(key)
        if jnp.issubdtype(dtype, jnp.integer) and key.ndim == 0:
            return jax.random.key(key)
    raise TypeError(
        f"{name} must be a jax.random key (jax.random.key(0)) or an integer seed, got "
        f"{type(key).__name__} with shape {np.shape(key)}"
    )


def _scalar(value, name: str):
    """Return a python float if concrete scalar, else the (traced) array."""
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value, dtype=float)
        except (TypeError, ValueError):  # strings or ragged lists inside
            raise TypeError(f"{name} must hold real numbers, got {value!r}") from None
    dtype = getattr(value, "dtype", None)
    if dtype is None or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be a real number or a real array, got {type(value).__name__}")
    return value


def check_positive(value, name: str, *, allow_array: bool = False):
    """``value > 0`` and finite (checked when concrete). Arrays (or lists) allowed if ``allow_array``."""
    value = _scalar(value, name) if allow_array else _scalar_setting(value, name)
    if is_concrete(value):
        v = np.asarray(value)
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def _scalar_setting(value, name: str):
    value = _scalar(value, name)
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    return value


def check_alpha(alpha, name: str = "alpha"):
    alpha = _scalar_setting(alpha, name)
    if is_concrete(alpha) and not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {alpha!r}")
    return alpha


def check_base(base, name: str = "base"):
    base = _scalar_setting(base, name)
    if is_concrete(base):
        b = float(base)
        if not np.isfinite(b) or b <= 0 or b == 1:
            raise ValueError(f"{name} must be positive, finite and not 1 (2 gives bits, e gives nats), got {base!r}")
    return base


def valid_base(base):
    """Traced check matching :func:`check_base`: finite, positive, not 1."""
    base = jnp.asarray(base)
    return jnp.isfinite(base) & (base > 0) & (base != 1)


def check_choice(value, name: str, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value

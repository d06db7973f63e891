"""Argument checks shared by the public functions.

The one module of input checks: it imports nothing from jaxdse, and each public
function validates its input here once, before any work. Everything here runs
in Python before tracing. Shapes and dtypes are always
visible; values are checked only when they are concrete (not jax tracers), so
that the same functions work eagerly and under ``jit``/``vmap``. Every error
names the argument and says what it got.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import NamedTuple

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
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}")
    return number


def as_key(key, name: str = "key"):
    """A ``jax.random`` key from a key or an integer seed (as ``random_state``)."""
    if isinstance(key, bool):
        raise TypeError(f"{name} must be a jax.random key or an integer seed, got {key!r}")
    if isinstance(key, (numbers.Integral, np.integer)):
        if not 0 <= int(key) < 2**63:
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


def check_mesh(mesh, name: str = "mesh"):
    """``mesh`` is ``None`` or a ``jax.sharding.Mesh``; returns it."""
    if mesh is not None and not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"{name} must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    return mesh


# ---------------------------------------------------------------- the input of a public estimate

DEFAULT_KNN = 7
PRECOMPUTED = ("distance", "affinity")
TOLERANCE = 1e-5  # symmetry and zero diagonal of a precomputed matrix, relative to its largest entry


class Bandwidth(NamedTuple):
    """A parsed bandwidth: ``rule`` is "fixed", "median", "sqrt_dim" or "knn".

    ``value`` is the number for "fixed" (may be traced) and ``k`` the neighbour
    count for "knn".
    """

    rule: str
    value: object = None
    k: int | None = None

    @property
    def number(self):
        """The traced setting for a compiled call: sigma for "fixed", 0 for a rule (resolved from the data)."""
        return self.value if self.rule == "fixed" else 0.0


def may_be_indefinite(rule: str, precomputed=None) -> bool:
    """Whether a kernel need not be positive semi-definite: the knn rule's
    ``exp(-d^2 / (2 s_i s_j))`` with per-point ``s``, or a precomputed affinity."""
    return rule == "knn" or bool(precomputed)


def parse_bandwidth(sigma, name: str = "sigma") -> Bandwidth:
    """Turn a user's ``sigma`` into a :class:`Bandwidth`, with clear errors."""
    if isinstance(sigma, Bandwidth):
        return sigma
    if isinstance(sigma, tuple) and len(sigma) == 2 and isinstance(sigma[0], str) and sigma[0] == "knn":
        return Bandwidth("knn", k=check_int(sigma[1], f"{name} (the k of the knn rule)"))
    forms = f"{name} must be a positive number or one of 'median', 'sqrt_dim', 'knn', 'knn:K', ('knn', K)"
    if isinstance(sigma, str):
        sigma = str(sigma)  # numpy's str_ as a plain str
        if sigma in ("median", "sqrt_dim"):
            return Bandwidth(sigma)
        if sigma == "knn":
            return Bandwidth("knn", k=DEFAULT_KNN)
        if sigma.startswith("knn:"):
            try:
                k = int(sigma[4:])
            except ValueError:
                raise ValueError(f"{name}={sigma!r}: the k in 'knn:k' must be an integer") from None
            return Bandwidth("knn", k=check_int(k, f"{name} (the k of the knn rule)"))
        raise ValueError(f"{forms}; got {sigma!r}")
    # Otherwise one real number (a scalar array or tracer too); a list or tuple is not unwrapped.
    if isinstance(sigma, (list, tuple, bytes)) or sigma is None:
        raise TypeError(f"{forms}; got {reprlib.repr(sigma)}")
    try:
        return Bandwidth("fixed", check_positive(sigma, name))
    except TypeError:  # an array of strings, a complex number, ...
        raise TypeError(f"{forms}; got {reprlib.repr(sigma)}") from None
    except ValueError:
        if np.ndim(sigma) == 0:  # not positive and finite
            raise
        raise ValueError(f"{forms}: one bandwidth, got an array of shape {np.shape(sigma)}") from None


def check_knn_k(bandwidth: Bandwidth, n_kept: int, name: str = "sigma"):
    """The knn rule needs ``k <= n - 1`` neighbours among the ``n_kept`` points."""
    if bandwidth.rule == "knn" and bandwidth.k is not None and bandwidth.k > n_kept - 1:
        raise ValueError(f"{name}: the knn bandwidth needs k <= n - 1 = {n_kept - 1} neighbours, got k={bandwidth.k}")


def _kept_rows(n: int, mask) -> int:
    """The rows a concrete ``mask`` keeps (``n`` without a mask or for a traced one)."""
    return n if mask is None or not is_concrete(mask) else count_true(mask)


def check_points(x, mask, name: str = "x"):
    """Validate points ``x`` ``[n, d]`` and their row ``mask`` together: ``(x, mask)``."""
    x = as_array(x, name)
    mask = check_mask(mask, np.shape(x)[0] if np.ndim(x) else 0)
    return as_points(x, name, mask=mask), mask


def check_points_and_bandwidth(x, sigma, mask, *, name: str = "x"):
    """Validate ``x``, ``sigma`` and ``mask`` together: ``(x, bandwidth, mask)``.

    A mask that keeps fewer than ``k + 1`` rows for the knn rule is an error
    (concrete) or NaN (traced, see the callers).
    """
    bandwidth = parse_bandwidth(sigma)
    x, mask = check_points(x, mask, name)
    check_knn_k(bandwidth, _kept_rows(x.shape[0], mask))
    return x, bandwidth, mask


def check_matrix(a, kind: str, mask=None, name: str = "x"):
    """Validate a precomputed ``[n, n]`` matrix (values only when concrete) and its mask: ``(a, mask)``."""
    check_choice(kind, "precomputed", PRECOMPUTED)
    a = as_array(a, name)
    shape = np.shape(a)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} with precomputed={kind!r} must be a square [n, n] matrix, got shape {tuple(shape)}")
    if shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows, got n={shape[0]}")
    mask = check_mask(mask, shape[0])
    a = as_points(a, name, mask=mask)
    if is_concrete(a) and (mask is None or is_concrete(mask)):
        m = np.asarray(a, np.float64)
        keep = np.ones(shape[0], bool) if mask is None else np.asarray(mask)
        if not np.all(np.isfinite(m[np.ix_(keep, keep)])):
            raise ValueError(f"{name} has non-finite entries in the rows and columns that are kept")
        m = np.where(keep[:, None] & keep[None, :], m, 0.0)
        with jax.ensure_compile_time_eval():
            failed = [
                what for what, ok in matrix_properties(jnp.asarray(m, a.dtype), kind, keep).items() if not bool(ok)
            ]
        if failed:
            raise ValueError(
                f"{name} with precomputed={kind!r} "
                + _FAILURES[failed[0]].format(name=name, tol=TOLERANCE, low=np.min(m))
            )
    return a, mask


# What check_matrix says when a property fails.
_FAILURES = {
    "symmetric": "must be symmetric (|{name} - {name}^T| <= {tol:g} max|{name}|)",
    "non-negative": "must be non-negative, its smallest entry is {low:g}",
    "zero diagonal": "must have a zero diagonal",
    "no isolated row": "has a row of zeros (an isolated point): no diffusion from it",
}


def matrix_properties(a, kind: str, keep):
    """Each property a precomputed matrix ``a`` (dropped pairs already 0) must have, as a boolean scalar.

    The one copy of these checks: :func:`check_matrix` evaluates them on
    concrete input to name a failure; :func:`valid_matrix` traces them (the
    kernels give NaN under ``jit`` where they fail).
    """
    scale = jnp.maximum(jnp.max(jnp.abs(a)), jnp.finfo(a.dtype).tiny)
    ok = {"symmetric": jnp.max(jnp.abs(a - a.T)) <= TOLERANCE * scale, "non-negative": jnp.min(a) >= 0}
    if kind == "distance":
        ok["zero diagonal"] = jnp.max(jnp.abs(jnp.diagonal(a))) <= TOLERANCE * scale
    else:
        ok["no isolated row"] = jnp.all(jnp.where(keep, jnp.sum(a, axis=1) > 0, True))
    return ok


def valid_matrix(a, kind: str, keep):
    """All of :func:`matrix_properties`, traced: a boolean scalar."""
    return jnp.all(jnp.stack(list(matrix_properties(a, kind, keep).values())))


def check_precomputed_bandwidth(bandwidth: Bandwidth, kind: str):
    if kind == "distance" and bandwidth.rule == "sqrt_dim":
        raise ValueError(
            "sigma='sqrt_dim' needs the points' dimension; with precomputed='distance' give a number or a rule"
        )


def _is_default_sigma(sigma):
    """``sigma`` left at its default of 10 (a traced value cannot be told apart, and is let through)."""
    if isinstance(sigma, (str, tuple, Bandwidth)):
        return False
    return not is_concrete(sigma) or (jnp.ndim(sigma) == 0 and float(sigma) == 10.0)


def check_input(x, sigma, mask, precomputed=None, name: str = "x"):
    """``(x, bandwidth, mask)`` for points ``[n, d]`` or a precomputed ``[n, n]`` matrix."""
    if precomputed is None:
        return check_points_and_bandwidth(x, sigma, mask, name=name)
    if precomputed == "affinity" and not _is_default_sigma(sigma):
        raise ValueError(
            f"sigma={sigma!r} has nothing to act on: with precomputed='affinity' the matrix is the kernel itself "
            "(leave sigma out, or pass distances with precomputed='distance')"
        )
    bandwidth = parse_bandwidth(sigma)
    x, mask = check_matrix(x, precomputed, mask, name)
    check_precomputed_bandwidth(bandwidth, precomputed)
    check_knn_k(bandwidth, _kept_rows(x.shape[0], mask))
    return x, bandwidth, mask


def check_numbers(t, alpha, base, *, auto_grid=None):
    """``(t, alpha, base)`` checked; ``t="auto"`` becomes the array ``auto_grid`` where one is given."""
    if isinstance(t, str):
        if t != "auto" or auto_grid is None:
            raise ValueError(f"t must be a positive number, an array of them, or 'auto', got {t!r}")
        t = jnp.asarray(auto_grid)
    else:
        t = check_positive(t, "t", allow_array=True)
    return t, check_alpha(alpha), check_base(base)

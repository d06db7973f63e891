"""A reference ``y`` -> integer class labels, for mutual information.

* integer labels ``[n]`` or ``[n, 1]`` (any integer values), booleans, and text
  labels (strings, concrete only) are classes;
* one-hot rows ``[n, C]`` (each row a single 1) are classes (their argmax);
* a continuous ``[n]``/``[n, 1]`` reference is min-max scaled and cut into
  ``num_clusters`` equal-width bins, as the reference package does;
* a continuous ``[n, d']`` reference (e.g. flattened input images) is clustered
  into ``num_clusters`` groups by :func:`jaxdse.cluster_reference` (eagerly only;
  under ``jit`` pass assignments computed once).

Labels are remapped to ``0..C-1``. Under ``jit`` the class count is a static
``num_classes``; a label that does not fit, or a non-finite reference value,
becomes ``-1``, which makes the estimate NaN (never a truncated number).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.mi.clustering import _bin_on_host, _check_num_clusters, bin_reference, cluster_reference


def _is_integer_dtype(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.integer)


def is_one_hot(y) -> bool:
    """Whether a concrete ``[n, C]`` array (C >= 2) holds one-hot rows."""
    arr = np.asarray(y)
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.dtype.kind not in "biuf":
        return False
    return bool(np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=1) == 1))


def _one_hot_traced(y):
    """argmax of traced integer one-hot rows; -1 for a row that is not one-hot."""
    ok = jnp.all((y == 0) | (y == 1), axis=1) & (jnp.sum(y, axis=1) == 1)
    return jnp.where(ok, jnp.argmax(y, axis=1), -1).astype(jnp.int32)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ == "NAType"


def prepare_labels(y, n: int, *, num_clusters: int = 10, reference_discrete=None, key=None, num_classes=None, name="y"):
    """Turn a reference ``y`` into integer labels ``[n]`` and a static class count.

    See the module docstring for how each kind of ``y`` is read;
    ``reference_discrete`` forces the reading (True: classes, False: a
    continuous reference). Returns ``(labels int32 [n], num_classes)``.
    """
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be an array of labels or reference values, got {type(y).__name__}")
    y = _checks.as_array(y, name)
    shape = np.shape(y)
    if len(shape) == 0 or len(shape) > 2:
        raise ValueError(f"{name} must have shape [n], [n, 1], [n, C] (one-hot) or [n, d'], got {tuple(shape)}")
    if shape[0] != n:
        raise ValueError(f"{name} has {shape[0]} rows but there are n={n} points; they must describe the same samples")
    dtype = np.dtype(y.dtype)
    column = len(shape) == 1 or shape[1] == 1
    if dtype.kind in "USO":  # text labels
        if not (_checks.is_concrete(y) and column):
            raise TypeError(f"{name}: text labels must be a concrete array of shape [n], got {tuple(shape)}")
        if reference_discrete is False:
            raise ValueError(f"{name}: text labels are classes; reference_discrete=False does not apply")
        flat = np.asarray(y).reshape(-1)
        if dtype.kind == "O":  # None, NaN or pandas' NA would become a class of their own
            missing = [i for i, v in enumerate(flat) if _is_missing(v)]
            if missing:
                raise ValueError(
                    f"{name} has {len(missing)} missing labels (None or NaN), first at row {missing[0]}: "
                    "drop those rows (a mask) or give them a class"
                )
        try:
            codes = np.unique(flat.astype(str), return_inverse=True)[1]
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: labels of dtype {dtype} must be numbers or text: {err}") from None
        return _remap_labels(codes.reshape(-1), num_classes)
    if dtype == np.bool_:
        y = jnp.asarray(y, jnp.int32) if not _checks.is_concrete(y) else np.asarray(y, np.int32)
        dtype = np.dtype(np.int32)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"{name} must have a real numeric or text dtype, got {dtype}")
    integer = _is_integer_dtype(dtype)
    if not column and reference_discrete is not False:
        if _checks.is_concrete(y) and is_one_hot(y):
            return _remap_labels(np.argmax(np.asarray(y), axis=1), num_classes)
        if not _checks.is_concrete(y) and integer:
            return _remap_labels(_one_hot_traced(y), num_classes, marked=True)
    if reference_discrete is None:
        reference_discrete = column and integer
    if reference_discrete:
        if not integer:
            raise ValueError(
                f"{name}: labels given as discrete (reference_discrete=True) must be integers, got dtype {dtype}"
            )
        if not column:
            raise ValueError(
                f"{name}: discrete labels must have shape [n], [n, 1] or one-hot [n, C], got {tuple(shape)}"
            )
        labels = np.asarray(y).reshape(-1) if _checks.is_concrete(y) else jnp.reshape(y, (-1,))
        return _remap_labels(labels, num_classes)
    if column:
        _check_num_clusters(num_clusters, n)
        if _checks.is_concrete(y):
            _checks.as_points(np.asarray(y).reshape(-1, 1), name)  # finite values
            labels = _bin_on_host(y, num_clusters)
        else:
            return _remap_labels(bin_reference(y, num_clusters), num_classes, marked=True)
        return _remap_labels(labels, num_classes)
    if not _checks.is_concrete(y):
        raise ValueError(
            f"{name}: a continuous multi-dimensional reference cannot be clustered under jit; "
            "cluster it once with jaxdse.cluster_reference(y, num_clusters) and pass the assignments"
        )
    labels = np.asarray(cluster_reference(y, num_clusters, key=key))
    return _remap_labels(labels, num_classes)


def _remap_labels(labels, num_classes, *, marked=False):
    """``(labels in 0..C-1, C)``; with ``marked`` (traced), a negative label is an invalid row, kept as -1."""
    if _checks.is_concrete(labels):
        # Concrete labels are handled on the host, also while tracing a jit.
        values, inverse = np.unique(np.asarray(labels), return_inverse=True)
        if num_classes is None:
            num_classes = len(values)
        _check_num_classes(num_classes)
        if len(values) > num_classes:
            raise ValueError(f"the labels have {len(values)} distinct values, more than num_classes={num_classes}")
        return np.asarray(inverse.reshape(-1), np.int32), num_classes
    if num_classes is None:
        raise ValueError("num_classes must be given (static) when the labels are traced under jit")
    _check_num_classes(num_classes)
    values, inverse = jnp.unique(labels, size=num_classes, fill_value=jnp.max(labels), return_inverse=True)
    inverse = inverse.reshape(-1).astype(jnp.int32)
    # More distinct labels than num_classes (unique() dropped some), or labels
    # already marked invalid: -1. A user's negative label is a class like any other.
    ok = values[inverse] == labels
    if marked:
        ok = ok & (labels >= 0)
    return jnp.where(ok, inverse, -1), num_classes


def _check_num_classes(num_classes):
    _checks.check_int(num_classes, "num_classes", minimum=1)

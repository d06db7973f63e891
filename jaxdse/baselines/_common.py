"""Argument checks used by the baselines beyond those in :mod:`jaxdse._checks`."""

from __future__ import annotations

import numbers

import numpy as np

from jaxdse import _checks


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """A Python integer ``>= minimum`` (a static setting: shapes depend on it)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_same_rows(x, y, x_name: str = "x", y_name: str = "y") -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of rows (samples), got {x.shape[0]} and {y.shape[0]}"
        )


def check_mask(mask, n: int, name: str = "mask"):
    """:func:`jaxdse._checks.check_mask`, also for a traced mask (under vmap/jit).

    A traced mask gets its shape and dtype checked; its values cannot be.
    """
    if mask is not None and not _checks.is_concrete(mask):
        if mask.shape != (n,):
            raise ValueError(f"{name} must have shape [n]=({n},) to match x, got {tuple(mask.shape)}")
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array, got dtype {mask.dtype}")
        return mask
    return _checks.check_mask(mask, n, name)

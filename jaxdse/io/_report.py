"""Small helpers for programs that report results: a timer, JSON-ready values, a progress bar.

Shared by the command line (:mod:`jaxdse.cli`) and the example scripts. Nothing
here computes a quantity; tqdm is imported only when a bar is asked for.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np


class Timer:
    """Wall time of a ``with`` block, in ``seconds`` (also readable inside the block)."""

    def __init__(self):
        self.start = None
        self.seconds = 0.0

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def jsonable(value):
    """``value`` with arrays and numpy/jax scalars turned into lists and Python numbers.

    Dict keys become strings; non-finite floats become ``None`` (JSON ``null``):
    callers that must not write ``null`` check :func:`non_finite` first.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) or type(value).__module__.startswith("jax"):
        arr = np.asarray(value)
        return jsonable(arr.tolist()) if arr.ndim else jsonable(arr.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def non_finite(value, path: str = "") -> list[str]:
    """The places (``"dse"``, ``"per_class[2].p"``, ...) in ``value`` that hold NaN or an infinity."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    if isinstance(value, (np.ndarray, np.generic, float)) or type(value).__module__.startswith("jax"):
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            return [path]
    return []


def progress(iterable=None, *, total=None, desc=None, disable=False):
    """A tqdm progress bar on stderr (a silent stand-in where tqdm is missing).

    Iterate over it, or call ``update``/``set_postfix``/``close`` on it.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the data and examples extras
        return _NoBar(iterable)
    return tqdm(
        iterable, total=total, desc=desc, disable=disable or None, file=sys.stderr, dynamic_ncols=True, leave=False
    )


class _NoBar:
    def __init__(self, iterable=None):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, *_):
        pass

    def set_postfix(self, *_, **__):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        pass

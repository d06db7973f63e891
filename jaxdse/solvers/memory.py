"""The memory budget for dense ``n x n`` work.

The budget never changes which quantity is computed, only how: a dense
computation above it fails fast with a :class:`MemoryError` that says how much it
needs, and the stochastic solver builds its kernel products block by block
instead of holding the kernel. A process-wide default (8 GiB, or the
``JAXDSE_MEMORY_BUDGET`` environment variable) can be overridden per call with
the solvers' ``memory_budget`` setting.
"""

from __future__ import annotations

import os

import numpy as np

from jaxdse import _checks

_DEFAULT_BUDGET = 8 * 2**30
_memory_budget = None


def set_memory_budget(num_bytes: int | None) -> None:
    """Set the process-wide default budget (bytes) for dense ``n x n`` computations.

    ``None`` restores the default: the ``JAXDSE_MEMORY_BUDGET`` environment
    variable if set (bytes, or with a ``K``/``M``/``G`` suffix), else 8 GiB.
    """
    global _memory_budget
    _memory_budget = None if num_bytes is None else _checks.check_int(num_bytes, "num_bytes")


def get_memory_budget(override: int | None = None) -> int:
    """The budget in bytes: ``override`` if given, else the process-wide default."""
    if override is not None:
        return int(override)
    if _memory_budget is not None:
        return _memory_budget
    env = os.environ.get("JAXDSE_MEMORY_BUDGET")
    if env:
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        s = env.strip().upper().rstrip("IB").rstrip("B")
        mult = units.get(s[-1:], 1)
        try:
            return int(float(s[:-1] if s[-1:] in units else s) * mult)
        except ValueError:
            raise ValueError(f"JAXDSE_MEMORY_BUDGET must be bytes like 8G or 8589934592, got {env!r}") from None
    return _DEFAULT_BUDGET


def dense_bytes(n: int, dtype, num_arrays: int = 4) -> int:
    """Peak bytes of ``num_arrays`` dense ``n x n`` arrays of ``dtype``.

    The exact path holds about four (distances, affinities, the operator and the
    eigensolver's workspace), five with eigenvectors.
    """
    return num_arrays * n * n * np.dtype(dtype).itemsize


def check_memory(need: int, budget: int, what: str) -> None:
    """Raise a :class:`MemoryError` naming ``what`` when ``need`` exceeds ``budget``."""
    if need > budget:
        gib = 2**30
        raise MemoryError(
            f"{what} needs about {need / gib:.2f} GiB of dense n x n arrays, above the memory budget of "
            f"{budget / gib:.2f} GiB. Use solver=SLQ() (matrix-free), pass a random subset of the rows, or raise "
            "the budget (the solver's memory_budget=, jaxdse.set_memory_budget or JAXDSE_MEMORY_BUDGET) if the "
            "machine has the memory."
        )

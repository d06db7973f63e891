"""DSE and DSMI over a grid of bandwidths sigma and diffusion times t, and the knee of a t curve.

:func:`sweep` evaluates the grid as one compiled call: for each sigma, one
eigendecomposition of the diffusion operator gives the entropy at every t
(``p_i = |lambda_i|^t / sum_j |lambda_j|^t``, ``DSE = -sum_i p_i log_b p_i``),
and DSMI reuses the same random subsets for every cell, so differences across
the grid are not sampling noise. :func:`knee` picks the t where an
entropy-versus-t curve bends, a rule diffusion-geometry tools use to choose t.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.entropy.estimators import dse
from jaxdse.entropy.knee import BEND, FLAT
from jaxdse.entropy.knee import knee as traced_knee
from jaxdse.mi.engine import as_options
from jaxdse.mi.estimators import dsmi
from jaxdse.mi.labels import prepare_labels
from jaxdse.solvers.memory import dense_bytes, get_memory_budget
from jaxdse.solvers.objects import Exact, as_solver


class Sweep(NamedTuple):
    """Values of a sigma x t sweep.

    Attributes:
      dse: ``[S, T]`` DSE(X) for ``sigmas[i]``, ``ts[j]`` (units of ``base``).
      dsmi: ``[S, T]`` DSMI(X; Y) with the labels, or ``None`` without labels.
    """

    dse: jax.Array
    dsmi: jax.Array | None


def sweep(
    x,
    sigmas,
    ts,
    *,
    labels=None,
    key=None,
    alpha=0.0,
    base=2.0,
    solver=None,
    **options,
) -> Sweep:
    """DSE (and DSMI with ``labels``) of the points ``x`` ``[n, d]`` for every ``(sigma, t)`` pair.

    One compiled call: the sigmas are mapped over (all at once when their dense
    ``n x n`` arrays fit :func:`jaxdse.get_memory_budget`, else in batches that
    do; DSMI one sigma at a time, each batching its subsets itself), and one
    eigendecomposition per sigma serves every t. ``sweep(x, s, t).dse[i, j]``
    equals ``jaxdse.dse(x, sigma=s[i], t=t[j])``, and ``.dsmi[i, j]`` equals
    ``jaxdse.dsmi(x, labels, key=key, sigma=s[i], t=t[j])``. Calling it again
    with other grids of the same sizes reuses the compiled code. It can itself
    be called under ``jax.jit`` with traced ``x``, ``sigmas``, ``ts`` (and key),
    as long as ``labels`` are concrete (their classes are counted on the host);
    traced grids are not checked for positivity (a sigma of 0 then gives NaN).

    Args:
      x: ``[n, d]`` points.
      sigmas: ``[S]`` positive bandwidths (resolve rules such as the median
        heuristic to numbers first).
      ts: ``[T]`` positive diffusion times.
      labels: optional integer class labels ``[n]`` (any integer values): also
        sweep DSMI(X; Y).
      key: ``jax.random`` key or integer seed for DSMI's random subsets
        (``estimator="subsample"``).
      alpha, base, solver: as in :func:`jaxdse.dse` (``solver`` exact:
        :class:`jaxdse.Exact`).
      **options: DSMI's settings as in :func:`jaxdse.dsmi`
        (:class:`jaxdse.MIOptions`: ``num_repetitions``, ``estimator``,
        ``comparison``, ``batch_size``, ``mesh``); the labels are read as
        classes and counted here, so ``num_classes``, ``max_class_size``,
        ``reference_discrete`` and ``num_clusters`` are not taken.

    Returns:
      A :class:`Sweep` of ``[S, T]`` arrays.

    Raises:
      ValueError: a sigma or t that is not positive and finite (a bandwidth of
        0 would divide by zero), grids that are not 1-D, labels of the wrong
        length, or ``estimator="subsample"`` with labels and no key.
      TypeError: grids that do not hold numbers (``sigmas=["median"]``).
      MemoryError: one sigma's dense computation exceeds the memory budget.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 3))
    >>> sweep(x, [1.0, 2.0], [1.0, 2.0, 5.0]).dse.shape
    (2, 3)
    """
    x = _checks.as_points(x, "x")
    sigmas = _grid(sigmas, "sigmas", x.dtype)
    ts = _grid(ts, "ts", x.dtype)
    n = x.shape[0]
    solver = as_solver(solver)
    if not isinstance(solver, Exact):
        raise ValueError("solver: a sweep shares one eigendecomposition per sigma across t; it needs Exact(...)")
    fit = max(1, get_memory_budget(solver.memory_budget) // max(dense_bytes(n, x.dtype), 1))
    dse_batch = None if fit >= sigmas.shape[0] else int(fit)
    settings = as_options(options)
    derived = sorted({"num_classes", "max_class_size", "reference_discrete", "num_clusters"} & set(options))
    if derived:
        raise ValueError(f"{derived}: the sweep reads labels as classes and counts them itself")
    if labels is None:
        return Sweep(_dse_grid(x, sigmas, ts, alpha, base, batch=dse_batch, solver=solver), None)
    if settings.estimator == "subsample" and key is None:
        raise ValueError("key is required for DSMI's random subsets (estimator='subsample')")
    classes, _ = prepare_labels(labels, n, reference_discrete=True, name="labels")
    if key is not None:
        key = _checks.as_key(key)
    settings = dataclasses.replace(
        settings,
        num_classes=int(classes.max()) + 1,
        max_class_size=int(np.bincount(classes).max()),
        reference_discrete=True,
    )
    return _both_grids(
        x, classes.astype(np.int32), key, sigmas, ts, alpha, base, dse_batch=dse_batch, solver=solver, settings=settings
    )


def _grid(values, name, dtype):
    if not _checks.is_concrete(values):  # traced (sweep called under jit): checked for shape only
        if np.ndim(values) != 1 or np.size(values) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {np.shape(values)}")
        return jnp.asarray(values, dtype)
    try:
        arr = np.asarray(values)
        numbers = jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating)
    except ValueError:  # ragged lists
        numbers = False
    if not numbers or arr.dtype == np.bool_:  # None, strings (a rule such as "median"), ...
        rule = " (resolve a rule such as 'median' to a number first)" if name == "sigmas" else ""
        raise TypeError(f"{name} must be a non-empty 1-D list of numbers{rule}, got {reprlib.repr(values)}")
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of numbers, got shape {arr.shape}")
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        raise ValueError(f"{name} must be positive and finite, got {arr[bad[0]]:g} at position {int(bad[0])}")
    return np.asarray(arr, dtype)


@functools.partial(jax.jit, static_argnames=("batch", "solver"))
def _dse_grid(x, sigmas, ts, alpha, base, *, batch, solver):
    def one(sigma):
        return dse(x, sigma=sigma, t=ts, alpha=alpha, base=base, solver=solver)

    return jax.vmap(one)(sigmas) if batch is None else jax.lax.map(one, sigmas, batch_size=batch)


@functools.partial(jax.jit, static_argnames=("dse_batch", "solver", "settings"))
def _both_grids(x, classes, key, sigmas, ts, alpha, base, *, dse_batch, solver, settings):
    options = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}

    def one(sigma):
        return dsmi(x, classes, key=key, sigma=sigma, t=ts, alpha=alpha, base=base, solver=solver, **options)

    h = _dse_grid(x, sigmas, ts, alpha, base, batch=dse_batch, solver=solver)
    return Sweep(h, jax.lax.map(one, sigmas))


def knee(ts, values, *, flat: float = FLAT, bend: float = BEND) -> float:
    """The t at the knee of a decreasing curve ``values(t)`` (see :mod:`jaxdse.entropy.knee`).

    Returns one of ``ts`` (the first for a flat curve), or NaN when the curve
    has no knee on the grid.

    Args:
      ts: ``[T]`` increasing positive times (T >= 3).
      values: ``[T]`` the curve, e.g. one row of :attr:`Sweep.dse`.
      flat, bend: the thresholds of :func:`jaxdse.entropy.knee.knee`.

    Raises:
      ValueError: shapes that differ, fewer than 3 points, times that are not
        positive and increasing, or non-finite values.

    >>> ts = [1, 2, 4, 8, 16, 32]
    >>> knee(ts, [5.0, 2.0, 1.2, 1.1, 1.05, 1.0])
    2.0
    >>> knee(ts, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    nan
    """
    t = np.asarray(ts, float)
    y = np.asarray(values, float)
    if t.ndim != 1 or y.shape != t.shape or t.size < 3:
        raise ValueError(f"ts and values must be 1-D of the same length >= 3, got {t.shape} and {y.shape}")
    if not (np.all(t > 0) and np.all(np.diff(t) > 0)):
        raise ValueError("ts must be positive and increasing")
    if not np.all(np.isfinite(y)):
        raise ValueError("values must be finite")
    return float(traced_knee(t, y, flat=flat, bend=bend))

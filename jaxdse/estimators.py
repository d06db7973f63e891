"""The public estimates: DSE and DSMI with any solver.

``DSE = -sum_i p_i log_b p_i`` with ``p_i = |lambda_i|^t / sum_j |lambda_j|^t`` over
the eigenvalues ``lambda`` of the diffusion operator of Gaussian affinities
(:mod:`jaxdse.affinity` -> :mod:`jaxdse.diffusion` -> :mod:`jaxdse.entropy`).
``DSMI(Z; Y) = DSE(Z) - sum_c p(c) DSE(Z | Y = c)``, estimated by
:mod:`jaxdse.engine` (by default against random equal-size subsets, as the
reference package does).

Every path answers the same question the same way: :class:`DiffusionEntropy`
prepares the points once (standardised, bandwidth rule resolved on the whole
set) and then evaluates any masked subset of them with the chosen solver, for
``dse`` (the kept rows of ``mask``), for DSMI's class and comparison subsets,
eagerly or under ``jit``/``vmap``/``grad``.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from jaxdse import _checks
from jaxdse.affinity import (
    Bandwidth,
    ScaledPoints,
    check_knn_k,
    check_points_and_bandwidth,
    parse_bandwidth,
)
from jaxdse.diffusion import exact_spectrum
from jaxdse.diffusion_entropy import DiffusionEntropy
from jaxdse.engine import MutualInformation, as_options, mutual_information
from jaxdse.knee import T_GRID, knee_index
from jaxdse import nystrom
from jaxdse.memory import check_memory, dense_bytes, get_memory_budget
from jaxdse.precomputed import check_bandwidth, check_matrix
from jaxdse.sharding import replicate_input
from jaxdse.solvers import SLQ, Estimate, Exact, as_solver


def _check_input(x, sigma, mask, precomputed, name="x"):
    """``(x, bandwidth, mask)`` for points ``[n, d]`` or a precomputed ``[n, n]`` matrix."""
    if precomputed is None:
        return check_points_and_bandwidth(x, sigma, mask, name=name)
    if precomputed == "affinity" and not _is_default_sigma(sigma):
        raise ValueError(
            f"sigma={sigma!r} has nothing to act on: with precomputed='affinity' the matrix is the kernel itself "
            "(leave sigma out, or pass distances with precomputed='distance')"
        )
    bandwidth = parse_bandwidth(sigma)
    x = check_matrix(x, precomputed, mask, name)
    mask = None if mask is None else _checks.check_mask(mask, x.shape[0])
    check_bandwidth(bandwidth, precomputed)
    kept = x.shape[0] if mask is None or not _checks.is_concrete(mask) else _checks.count_true(mask)
    check_knn_k(bandwidth, kept)
    return x, bandwidth, mask


def _is_default_sigma(sigma):
    """``sigma`` left at its default of 10 (a traced value cannot be told apart, and is let through)."""
    if isinstance(sigma, (str, tuple, Bandwidth)):
        return False
    return not _checks.is_concrete(sigma) or (jnp.ndim(sigma) == 0 and float(sigma) == 10.0)


def _check_numbers(t, alpha, base):
    if isinstance(t, str):
        if t != "auto":
            raise ValueError(f"t must be a positive number, an array of them, or 'auto', got {t!r}")
        t = jnp.asarray(T_GRID)
    else:
        t = _checks.check_positive(t, "t", allow_array=True)
    return t, _checks.check_alpha(alpha), _checks.check_base(base)


def _knee(curve):
    """``(index, t)`` of the knee of ``curve`` (DSE on :data:`jaxdse.knee.T_GRID`); index -1 and t NaN without one."""
    grid = jnp.asarray(T_GRID, curve.dtype)
    idx = knee_index(grid, curve)
    if _checks.is_concrete(idx) and int(idx) < 0:
        raise ValueError("t='auto': DSE against t has no knee for t in [1, 1024] (it is straight in log t); pass t")
    return idx, jnp.where(idx >= 0, grid[jnp.maximum(idx, 0)], jnp.nan)


def _at_knee(est: Estimate) -> Estimate:
    """The estimate at the knee of DSE against t on :data:`jaxdse.knee.T_GRID`, with that t (NaN without a knee)."""
    idx, t = _knee(est.value)
    pick, known = jnp.maximum(idx, 0), idx >= 0
    return Estimate(jnp.where(known, est.value[pick], jnp.nan), jnp.where(known, est.stderr[pick], jnp.nan), t)


def _entropy_for(bandwidth: Bandwidth, solver, n: int, dtype, key, precomputed=None, standardize=False):
    """The :class:`DiffusionEntropy` of a call, after the checks that need its solver."""
    if isinstance(solver, nystrom.Nystrom):
        return nystrom.entropy_for(bandwidth, solver, n, key, precomputed, standardize)
    if precomputed and isinstance(solver, SLQ) and (solver.operator == "blockwise" or solver.mesh is not None):
        raise ValueError("solver: a precomputed matrix is held in memory; use SLQ(operator='dense') or 'auto'")
    if isinstance(solver, SLQ):
        if key is None:
            raise ValueError("solver=SLQ(...) needs key= (a jax.random key or an integer seed): it draws probes")
        if solver.num_matvecs > n or solver.deflation_rank >= n:
            raise ValueError(
                f"solver: num_matvecs={solver.num_matvecs} and deflation_rank={solver.deflation_rank} must stay "
                f"below n={n}; for so few points use the exact solver"
            )
    budget = get_memory_budget(solver.memory_budget)
    if isinstance(solver, Exact):
        check_memory(dense_bytes(n, dtype, 5 if solver.eigensolver == "eigh" else 4), budget, f"the exact DSE at n={n}")
    elif solver.operator == "dense":
        check_memory(dense_bytes(n, dtype, 4), budget, f"the dense operator of SLQ at n={n}")
    if isinstance(solver, SLQ) and bandwidth.rule == "median":
        check_memory(dense_bytes(n, dtype, 2), budget, f"sigma='median' (all pairwise distances) at n={n}")
    if isinstance(solver, SLQ) and bandwidth.rule == "knn":
        check_memory(dense_bytes(n, dtype, 2), budget, f"sigma='knn' (all pairwise distances) at n={n}")
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be True or False, got {standardize!r}")
    if standardize and precomputed:
        raise ValueError("standardize applies to points, not to a precomputed matrix")
    return DiffusionEntropy(bandwidth.rule, bandwidth.k, solver, precomputed, standardize)


def _check_median(entropy, x, params, keep):
    """``sigma='median'`` on concrete data whose median distance is 0: an error naming sigma."""
    if entropy.rule == "median" and _checks.is_concrete(x) and (keep is None or _checks.is_concrete(keep)):
        scales = _prepare(x, params, keep, entropy=entropy).scales
        if not bool(jnp.isfinite(scales[0])):
            raise ValueError(
                "sigma='median': the median pairwise distance is 0 (many duplicate rows); pass a number instead"
            )


@partial(jax.jit, static_argnames=("entropy",))
def _prepare(x, params, keep, *, entropy):
    return entropy.prepare(x, params, keep)


@partial(jax.jit, static_argnames=("entropy",))
def _estimate(x, keep, params, key, *, entropy):
    # Compiled once per shape and static configuration (eager calls cost one
    # dispatch); inside a user's jit this is inlined.
    return entropy(entropy.prepare(x, params, keep), keep, params, key)


def dse_estimate(
    x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None, key=None, max_n=None, precomputed=None,
    standardize=False,
) -> Estimate:
    """:func:`dse` with its standard error: an :class:`Estimate` ``(value, stderr, t)``.

    ``stderr`` is 0 for the exact solver; for :class:`jaxdse.SLQ` it combines the
    probe-to-probe spread and the quadrature error (``value +- 2 stderr``).
    ``t`` is the diffusion time of each value: with ``t="auto"``, the t chosen
    (from the same decomposition as the value).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> est = dse_estimate(x, sigma=1.0, t="auto")
    >>> bool(est.t == choose_t(x, sigma=1.0))
    True
    """
    solver = as_solver(solver)
    x, bandwidth, mask = _check_input(x, sigma, mask, precomputed)
    t_given = t
    t, alpha, base = _check_numbers(t, alpha, base)
    if key is not None:
        key = _checks.as_key(key)
    if max_n is not None and precomputed is not None:
        raise ValueError("max_n does not combine with a precomputed matrix: take the rows and columns yourself")
    if max_n is not None:
        _checks.check_int(max_n, "max_n", minimum=2)
        if key is None:
            raise ValueError("max_n needs key= (a jax.random key or an integer seed) to draw the subsample")
        if mask is not None:
            raise ValueError("max_n and mask cannot be combined: subsample the kept rows yourself")
        x, key = subsample(x, key, max_n)
    entropy = _entropy_for(bandwidth, solver, x.shape[0], x.dtype, key, precomputed, standardize)
    if isinstance(solver, SLQ):
        x = replicate_input(x, solver.mesh)
    params = (bandwidth.number, t, alpha, base)
    key = jax.random.key(0) if key is None else key
    if isinstance(solver, nystrom.Nystrom):
        params = params + (key,)
    _check_median(entropy, x, params, mask)
    est = _estimate(x, mask, params, key, entropy=entropy)
    if isinstance(solver, nystrom.Nystrom):
        nystrom.warn_if_coarse(est, base)
    if isinstance(t_given, str):
        return _at_knee(est)
    return est._replace(t=jnp.broadcast_to(jnp.asarray(t, est.value.dtype), est.value.shape))


def dse(
    x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None, key=None, max_n=None, precomputed=None,
    standardize=False,
):
    """Diffusion spectral entropy of the points ``x`` ``[n, d]``.

    ``DSE = -sum_i p_i log_b p_i`` with ``p_i = |lambda_i|^t / sum_j |lambda_j|^t``
    and ``lambda`` the eigenvalues of the diffusion operator ``P = D^-1 K`` built
    from Gaussian affinities ``exp(-|x_i - x_j|^2 / 2 sigma^2)`` (Liao, Liu et al.,
    arXiv 2312.04823). With the defaults (``sigma=10, t=1, alpha=0, base=2``) it
    equals ``dse_dsmi.diffusion_spectral_entropy(x)`` of the authors' package for
    ``n <= 10000`` (that package subsamples larger sets; this never does).

    Args:
      x: ``[n, d]`` points (numpy, jax, lists, pandas, torch; ``[n, ...]`` is
        flattened to ``[n, d]``).
      sigma: a positive number (traced: sweeps compile once), or a rule
        ``"median"``, ``"sqrt_dim"``, ``"knn"`` / ``"knn:K"`` (resolved on the
        kept rows; see :mod:`jaxdse.affinity`).
      t: diffusion time > 0; an array of times gives one entropy per time from a
        single eigendecomposition; ``"auto"`` takes the t at the knee of DSE
        against t (PHATE's choice, :mod:`jaxdse.knee`; :func:`choose_t` says
        which), an error (NaN under ``jit``) when the curve has no knee.
      alpha: anisotropy exponent in [0, 1].
      base: log base; 2 gives bits (default), ``e`` nats.
      mask: optional ``[n]`` bool; the result equals ``dse(x[mask])``.
      solver: :class:`jaxdse.Exact` (default) or :class:`jaxdse.SLQ` (needs
        ``key``; :func:`dse_estimate` also returns its standard error), or the
        shorthands ``"exact"``, ``"eigh"``, ``"slq"``.
      key: ``jax.random`` key or integer seed, for ``SLQ`` and ``max_n``.
      max_n: explicit subsampling, off by default: if ``n > max_n``, use
        ``max_n`` rows drawn uniformly without replacement with ``key``.
      precomputed: ``None`` (``x`` holds points), ``"distance"`` (``x`` is an
        ``[n, n]`` distance matrix) or ``"affinity"`` (``x`` is the ``[n, n]``
        affinity matrix itself; ``sigma`` must be left out), see :mod:`jaxdse.precomputed`.
      standardize: z-score every feature (on the kept rows) before the kernel.
        For tabular data whose columns have unrelated units (on scikit-learn's
        wine data one column sets the median distance); leave it off for
        network features, whose scale is part of the representation.

    Returns:
      Entropy in units of ``base`` (``t``'s shape); ``0 <= DSE <= log_b n``.

    Raises:
      TypeError/ValueError naming the argument for bad input (before tracing);
      MemoryError when the dense ``n x n`` work exceeds the memory budget.

    Works under ``jax.jit`` (``solver``, ``mask``'s presence and a string
    ``sigma`` are static), ``jax.vmap`` over ``x``, ``mask``, ``sigma``, ``t``,
    ``alpha`` and ``key``, and ``jax.grad`` with respect to ``x`` and ``sigma``,
    for both solvers. Under ``jit``, where values cannot be checked, non-finite
    kept rows or invalid numeric settings give NaN, never a plausible number.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(20.0).reshape(10, 2) * 100.0  # points far apart
    >>> round(float(dse(x)), 4)  # = log2(10)
    3.3219
    """
    settings = dict(locals())
    del settings["x"]
    return dse_estimate(x, **settings).value


def subsample(x, key, max_n: int):
    """``max_n`` rows of ``x`` drawn uniformly without replacement (all if fewer).

    Returns ``(rows, key)`` with a fresh key for what follows.
    """
    idx, key = subsample_indices(x.shape[0], key, max_n)
    return (x if idx is None else x[idx]), key


def subsample_indices(n: int, key, max_n: int):
    """``(indices, key)``: ``max_n`` of ``n`` row indices, drawn uniformly without
    replacement and sorted (``None`` when ``n <= max_n``: every row), and a fresh
    key for what follows. The one draw :func:`subsample`, ``max_n=`` and the
    command line's ``--max-n`` share."""
    if n <= max_n:
        return None, key
    key, sub = jax.random.split(key)
    return jnp.sort(jax.random.choice(sub, n, (max_n,), replace=False)), key


def diffusion_eigenvalues(x, *, sigma=10.0, alpha=0.0, mask=None, solver=None):
    """The ``n`` eigenvalues of the diffusion operator of the points ``x`` ``[n, d]``, ascending.

    All in [-1, 1], the largest exactly 1; rows that ``mask`` drops give exact
    zeros. ``solver`` must be exact (:class:`jaxdse.Exact` or ``"exact"``/``"eigh"``).
    Works under ``jit``, ``vmap`` and ``grad``; non-finite kept rows under ``jit``
    give NaN.

    >>> import jax.numpy as jnp
    >>> [round(float(v), 3) for v in diffusion_eigenvalues(jnp.eye(3) * 100.0)]
    [1.0, 1.0, 1.0]
    """
    solver = as_solver(solver)
    if not isinstance(solver, Exact):
        raise ValueError("diffusion_eigenvalues needs an exact solver (Exact(...)); SLQ estimates entropies only")
    x, bandwidth, mask = check_points_and_bandwidth(x, sigma, mask)
    alpha = _checks.check_alpha(alpha)
    entropy = _entropy_for(bandwidth, solver, x.shape[0], x.dtype, None)
    params = (bandwidth.number, 1.0, alpha, 2.0)
    _check_median(entropy, x, params, mask)
    return _eigenvalues(x, mask, params, entropy=entropy)


@partial(jax.jit, static_argnames=("entropy",))
def _eigenvalues(x, keep, params, *, entropy):
    _, _, alpha, _ = params
    points, scales = entropy.prepare(x, params, keep)
    keep = jnp.ones(x.shape[0], bool) if keep is None else keep
    ok = jnp.all(jnp.where(keep[:, None], jnp.isfinite(points), True)) & jnp.all(jnp.where(keep, jnp.isfinite(scales), True))
    ok = ok & (jnp.asarray(alpha) >= 0) & (jnp.asarray(alpha) <= 1) & (jnp.sum(keep) >= 2)
    rows = ScaledPoints(jnp.where(ok, points, 0.0), jnp.where(ok & keep, scales, 1.0))
    lam = jnp.sort(exact_spectrum(rows, alpha, keep, entropy.solver.eigensolver))
    return jnp.where(ok, lam, jnp.nan)


def dsmi_terms(
    z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, precomputed=None, standardize=False, **options
) -> MutualInformation:
    """:func:`dsmi` with its per-class terms and standard error (a :class:`jaxdse.MutualInformation`).

    Its ``t`` field is the diffusion time of each value; with ``t="auto"``,
    the t chosen on all of ``z``.
    """
    solver = as_solver(solver)
    as_options(options)  # unknown or invalid settings first
    if isinstance(t, str) and t == "auto":
        t = choose_t(z, sigma=sigma, alpha=alpha, solver=solver, key=key, precomputed=precomputed, standardize=standardize)
    z, bandwidth, _ = _check_input(z, sigma, None, precomputed, name="z")
    t, alpha, base = _check_numbers(t, alpha, base)
    if key is not None:
        key = _checks.as_key(key)
    n_check = 2 if isinstance(solver, Exact) else z.shape[0]
    entropy = _entropy_for(bandwidth, solver, n_check, z.dtype, key, precomputed, standardize)
    params = (bandwidth.number, t, alpha, base)
    if isinstance(solver, nystrom.Nystrom):
        entropy = dataclasses.replace(entropy, factored=True)
        params = params + (jax.random.key(0) if key is None else key,)
    _check_median(entropy, z, params, None)
    result = mutual_information(z, y, entropy=entropy, params=params, key=key, **options)
    if isinstance(solver, nystrom.Nystrom):
        nystrom.warn_if_coarse(result, base)
    return result._replace(t=jnp.broadcast_to(jnp.asarray(t, result.value.dtype), result.value.shape))


def dsmi(
    z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, precomputed=None, standardize=False, **options
):
    """Diffusion spectral mutual information ``DSMI(Z; Y)`` (units of ``base``; ``t``'s shape).

    ``DSMI = sum_c p(c) [mean_r DSE(Z*_{c,r}) - DSE(Z | Y = c)]`` for the default
    ``estimator="subsample"`` (``R`` random equal-size subsets ``Z*`` per class,
    as the reference package), or ``DSE(Z) - sum_c p(c) DSE(Z | Y = c)`` for
    ``"plugin"``. In expectation 0 when ``Z`` and ``Y`` are independent; bounded
    above by about ``DSE(Z)``. The bandwidth rule is resolved once on all of
    ``z``: every subset uses the kernel of the whole set.

    Args:
      z: ``[n, d]`` representation.
      y: reference for the same n samples: class labels ``[n]`` (integers, text,
        booleans), one-hot rows ``[n, C]``, cluster assignments from
        :func:`jaxdse.cluster_reference`, a continuous scalar ``[n]`` (binned into
        ``num_clusters`` equal-width bins) or continuous vectors ``[n, d']``
        (clustered into ``num_clusters`` groups).
      key: ``jax.random`` key or integer seed; required for ``"subsample"``.
      sigma, t, alpha, base, solver, precomputed, standardize: as in :func:`jaxdse.dse`
        (``t="auto"``: the knee of DSE(Z) against t)
        (a precomputed ``z`` is ``[n, n]``; each subset takes its block); an array ``t``
        ``[*T]`` gives one DSMI per time from the same eigenvalues and subsets.
      **options: the estimator's settings, :class:`jaxdse.MIOptions`
        (``num_repetitions=5``, ``estimator``, ``comparison``, ``num_clusters``,
        ``num_classes``, ``max_class_size``, ``reference_discrete``,
        ``batch_size``, ``mesh``).

    A class with a single member has conditional entropy 0; a single class
    overall gives exactly 0. Works under ``jit`` (traced labels with
    ``num_classes``/``max_class_size`` given), ``vmap`` over ``sigma``/``t``/``z``/
    ``key``, and ``grad`` with respect to ``z``, for both solvers.

    >>> import numpy as np
    >>> z = np.concatenate([np.zeros((20, 2)), np.ones((20, 2)) * 50]) + np.random.default_rng(0).normal(size=(40, 2))
    >>> y = np.repeat([0, 1], 20)
    >>> round(float(dsmi(z, y, sigma=2.0, estimator="plugin")), 2)
    1.03
    """
    settings = dict(locals())
    options = settings.pop("options")
    return dsmi_terms(settings.pop("z"), settings.pop("y"), **settings, **options).value


def choose_t(x, *, sigma=10.0, alpha=0.0, mask=None, solver=None, key=None, precomputed=None, standardize=False):
    """The diffusion time ``t="auto"`` picks: the knee of DSE against t (:mod:`jaxdse.knee`).

    One decomposition gives DSE for every t of the grid ``1, 2^(1/4), ..., 1024``;
    the knee is a point of that grid (the smallest t when DSE does not depend
    on t). Raises a ValueError naming ``t`` when the curve has no knee (NaN
    under ``jit``). Arguments as in :func:`dse`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> 1.0 <= float(choose_t(x, sigma=1.0)) <= 1024.0
    True
    """
    curve = dse_estimate(
        x,
        sigma=sigma,
        t=jnp.asarray(T_GRID),
        alpha=alpha,
        mask=mask,
        solver=solver,
        key=key,
        precomputed=precomputed,
        standardize=standardize,
    )
    return _knee(curve.value)[1]

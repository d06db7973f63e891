"""The public DSE estimates, with any solver.

``DSE = -sum_i p_i log_b p_i`` with ``p_i = |lambda_i|^t / sum_j |lambda_j|^t`` over
the eigenvalues ``lambda`` of the diffusion operator of Gaussian affinities
(:mod:`jaxdse.kernels` -> :mod:`jaxdse.solvers` -> :mod:`jaxdse.entropy.spectral`).

Every path answers the same question the same way: :class:`DiffusionEntropy`
prepares the points once (standardised, bandwidth rule resolved on the whole
set) and then evaluates any masked subset of them with the chosen solver, for
``dse`` (the kept rows of ``mask``), for DSMI's class and comparison subsets
(:mod:`jaxdse.mi.estimators`), eagerly or under ``jit``/``vmap``/``grad``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.entropy import nystrom
from jaxdse.entropy.diffusion_entropy import DiffusionEntropy
from jaxdse.entropy.knee import T_GRID, knee_index
from jaxdse.kernels.peers import kernel_affinity
from jaxdse.kernels.points import ScaledPoints
from jaxdse.solvers.diffusion import affinity_eigenvalues, exact_spectrum
from jaxdse.solvers.memory import check_memory, dense_bytes, get_memory_budget
from jaxdse.solvers.objects import SLQ, Estimate, Exact, as_solver
from jaxdse.solvers.sharding import replicate_input


def _knee(curve):
    """``(index, t)`` of the knee of ``curve`` (DSE on :data:`jaxdse.entropy.knee.T_GRID`).

    Index -1 and t NaN when the curve has no knee.
    """
    grid = jnp.asarray(T_GRID, curve.dtype)
    idx = knee_index(grid, curve)
    if _checks.is_concrete(idx) and int(idx) < 0:
        raise ValueError("t='auto': DSE against t has no knee for t in [1, 1024] (it is straight in log t); pass t")
    return idx, jnp.where(idx >= 0, grid[jnp.maximum(idx, 0)], jnp.nan)


def _at_knee(est: Estimate) -> Estimate:
    """The estimate at the knee of DSE against t on :data:`jaxdse.entropy.knee.T_GRID`, with that t.

    The t is NaN when the curve has no knee.
    """
    idx, t = _knee(est.value)
    pick, known = jnp.maximum(idx, 0), idx >= 0
    return Estimate(jnp.where(known, est.value[pick], jnp.nan), jnp.where(known, est.stderr[pick], jnp.nan), t)


def entropy_for(bandwidth: Bandwidth, solver, n: int, dtype, key, precomputed=None, standardize=False):
    """The :class:`DiffusionEntropy` of a call, after the checks that need its solver."""
    if isinstance(solver, nystrom.Nystrom):
        return nystrom.entropy_for(bandwidth, solver, n, key, precomputed, standardize)
    if precomputed and isinstance(solver, SLQ) and (solver.operator == "blockwise" or solver.mesh is not None):
        raise ValueError("solver: a precomputed matrix is held in memory; use SLQ(operator='dense') or 'auto'")
    if isinstance(solver, SLQ):
        if key is None:
            raise ValueError("solver=SLQ(...) needs key= (a jax.random key or an integer seed): it draws probes")
        steps = solver.matvecs_for(_checks.may_be_indefinite(bandwidth.rule, precomputed), n)
        if steps > n:
            raise ValueError(
                f"solver: num_matvecs={steps} (SLQ's {'default' if solver.num_matvecs is None else 'setting'}) "
                f"must not exceed n={n}; for so few points use the exact solver"
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


def check_median(entropy, x, params, keep):
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
    standardize=False, kernel=None,
) -> Estimate:  # fmt: skip
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
    if kernel is not None:  # its affinity matrix, then the precomputed path
        x = kernel_affinity(kernel, x, sigma=sigma, precomputed=precomputed, mask=mask, max_n=max_n)
        sigma, precomputed = 10.0, "affinity"
    x, bandwidth, mask = _checks.check_input(x, sigma, mask, precomputed)
    t_given = t
    t, alpha, base = _checks.check_numbers(t, alpha, base, auto_grid=T_GRID)
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
    entropy = entropy_for(bandwidth, solver, x.shape[0], x.dtype, key, precomputed, standardize)
    if isinstance(solver, (SLQ, nystrom.Nystrom)):
        x = replicate_input(x, solver.mesh)
    params: tuple = (bandwidth.number, t, alpha, base)
    key = jax.random.key(0) if key is None else key
    if isinstance(solver, nystrom.Nystrom):
        params = params + (key,)
    check_median(entropy, x, params, mask)
    est = _estimate(x, mask, params, key, entropy=entropy)
    if isinstance(solver, nystrom.Nystrom):
        nystrom.warn_if_coarse(est, base)
    if isinstance(t_given, str):
        return _at_knee(est)
    return est._replace(t=jnp.broadcast_to(jnp.asarray(t, est.value.dtype), est.value.shape))


def exact_operator(x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None):
    """The exact :func:`dse_estimate` up to its eigenvalues: ``(S, v, keep, valid)``.

    :func:`jaxdse.entropy.diffusion_entropy.exact_value` of them (with the same
    ``t``, ``base`` and the solver's eigensolver) equals ``dse_estimate(x, ...)``;
    in between, the operators of several inputs can be gathered and their
    eigenvalues computed together (:func:`jaxdse.layerwise`).
    Points only (no precomputed matrix, kernel or subsample), a numeric ``t``.
    """
    solver = as_solver(solver)
    if not isinstance(solver, Exact):
        raise TypeError(f"solver: the staged path is the exact solver's, got {solver!r}")
    x, bandwidth, mask = _checks.check_input(x, sigma, mask, None)
    t, alpha, base = _checks.check_numbers(t, alpha, base)
    entropy = entropy_for(bandwidth, solver, x.shape[0], x.dtype, None)
    params = (bandwidth.number, t, alpha, base)
    check_median(entropy, x, params, mask)
    return entropy.exact_operator(entropy.prepare(x, params, mask), mask, params)


def dse(
    x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None, key=None, max_n=None, precomputed=None,
    standardize=False, kernel=None,
):  # fmt: skip
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
        kept rows; see :mod:`jaxdse.kernels.points`).
      t: diffusion time > 0; an array of times gives one entropy per time from a
        single eigendecomposition; ``"auto"`` takes the t at the knee of DSE
        against t (PHATE's choice, :mod:`jaxdse.entropy.knee`; :func:`choose_t` says
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
        affinity matrix itself; ``sigma`` must be left out), see :mod:`jaxdse.kernels.precomputed`.
      standardize: z-score every feature (on the kept rows) before the kernel.
        For tabular data whose columns have unrelated units (on scikit-learn's
        wine data one column sets the median distance); leave it off for
        network features, whose scale is part of the representation.

      kernel: a kernel object in place of the Gaussian, :class:`jaxdse.KNNKernel`
        (manylatents') or :class:`jaxdse.AlphaDecayKernel` (graphtools', PHATE's):
        its dense affinity matrix of the kept points is used as with
        ``precomputed="affinity"``. ``sigma`` must then be left out, and
        ``precomputed`` and ``max_n`` are errors; see :mod:`jaxdse.kernels.peers`.

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


def diffusion_eigenvalues(x, *, sigma=10.0, alpha=0.0, mask=None, solver=None, kernel=None):
    """The ``n`` eigenvalues of the diffusion operator of the points ``x`` ``[n, d]``, ascending.

    All in [-1, 1], the largest exactly 1; rows that ``mask`` drops give exact
    zeros. ``solver`` must be exact (:class:`jaxdse.Exact` or ``"exact"``/``"eigh"``).
    Works under ``jit``, ``vmap`` and ``grad``; non-finite kept rows under ``jit``
    give NaN. ``kernel``: a kernel object in place of ``sigma``, as in :func:`dse`.

    >>> import jax.numpy as jnp
    >>> [round(float(v), 3) for v in diffusion_eigenvalues(jnp.eye(3) * 100.0)]
    [1.0, 1.0, 1.0]
    """
    solver = as_solver(solver)
    if not isinstance(solver, Exact):
        raise ValueError("diffusion_eigenvalues needs an exact solver (Exact(...)); SLQ estimates entropies only")
    if kernel is not None:
        G = kernel_affinity(kernel, x, sigma=sigma, mask=mask)
        return affinity_eigenvalues(G, _checks.check_alpha(alpha), mask, solver.eigensolver)
    x, bandwidth, mask = _checks.check_points_and_bandwidth(x, sigma, mask)
    alpha = _checks.check_alpha(alpha)
    entropy = entropy_for(bandwidth, solver, x.shape[0], x.dtype, None)
    params = (bandwidth.number, 1.0, alpha, 2.0)
    check_median(entropy, x, params, mask)
    return _eigenvalues(x, mask, params, entropy=entropy)


@partial(jax.jit, static_argnames=("entropy",))
def _eigenvalues(x, keep, params, *, entropy):
    _, _, alpha, _ = params
    points, scales = entropy.prepare(x, params, keep)
    keep = jnp.ones(x.shape[0], bool) if keep is None else keep
    ok = jnp.all(jnp.where(keep[:, None], jnp.isfinite(points), True)) & jnp.all(
        jnp.where(keep, jnp.isfinite(scales), True)
    )
    ok = ok & (jnp.asarray(alpha) >= 0) & (jnp.asarray(alpha) <= 1) & (jnp.sum(keep) >= 2)
    rows = ScaledPoints(jnp.where(ok, points, 0.0), jnp.where(ok & keep, scales, 1.0))
    lam = jnp.sort(exact_spectrum(rows, alpha, keep, entropy.solver.eigensolver))
    return jnp.where(ok, lam, jnp.nan)


def choose_t(
    x, *, sigma=10.0, alpha=0.0, mask=None, solver=None, key=None, precomputed=None, standardize=False, kernel=None
):
    """The diffusion time ``t="auto"`` picks: the knee of DSE against t (:mod:`jaxdse.entropy.knee`).

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
        kernel=kernel,
    )
    return _knee(curve.value)[1]

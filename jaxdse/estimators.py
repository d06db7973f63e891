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
import numpy as np

from jaxdse import _checks
from jaxdse.affinity import Bandwidth, ScaledPoints, check_points_and_bandwidth, prepare_points, self_sq_distances
from jaxdse.diffusion import exact_spectrum
from jaxdse.engine import MutualInformation, as_options, mutual_information
from jaxdse.entropy import entropy_of_spectrum
from jaxdse.memory import check_memory, dense_bytes, get_memory_budget
from jaxdse.operators import blockwise_operator, dense_operator
from jaxdse.slq import slq_entropy
from jaxdse.solvers import SLQ, Estimate, Exact, as_solver


@dataclasses.dataclass(frozen=True)
class DiffusionEntropy:
    """DSE of masked subsets of one prepared point set (a :class:`jaxdse.engine.SubsetEntropy`).

    Static: the bandwidth rule (and its k) and the solver; the numbers
    ``params = (sigma, t, alpha, base)`` are traced.
    """

    rule: str = "fixed"
    k: int | None = None
    solver: object = Exact()

    def prepare(self, z, params, keep=None) -> ScaledPoints:
        sigma = params[0]
        return prepare_points(z, Bandwidth(self.rule, sigma, self.k), keep)

    @property
    def shares_pairwise(self) -> bool:
        return isinstance(self.solver, Exact)

    def pairwise(self, rows: ScaledPoints):
        return self_sq_distances(rows.points)

    def from_pairwise(self, d2, rows: ScaledPoints, mask, params, key) -> Estimate:
        return self(rows, mask, params, key, d2=d2)

    def subset_bytes(self, m: int, dtype) -> int:
        if isinstance(self.solver, Exact):
            return dense_bytes(m, dtype, 5 if self.solver.eigensolver == "eigh" else 4)
        if self._operator(m, dtype) == "dense":
            return dense_bytes(m, dtype, 4)
        columns = self.solver.num_probes + self.solver.deflation_rank
        per_row = 3 * self.solver.block_size + (self.solver.num_matvecs + 4) * columns
        return per_row * m * np.dtype(dtype).itemsize

    def _operator(self, m: int, dtype) -> str:
        solver = self.solver
        if solver.operator != "auto":
            return solver.operator
        fits = dense_bytes(m, dtype) <= get_memory_budget(solver.memory_budget)
        return "dense" if fits and solver.mesh is None else "blockwise"

    def __call__(self, rows: ScaledPoints, mask, params, key, d2=None) -> Estimate:
        _, t, alpha, base = params
        points, scales = rows
        m, dtype = points.shape[0], points.dtype
        keep = jnp.ones(m, bool) if mask is None else mask
        t = jnp.asarray(t, dtype)
        alpha = jnp.asarray(alpha, dtype)
        finite = jnp.all(jnp.where(keep[:, None], jnp.isfinite(points), True)) & jnp.all(
            jnp.where(keep, jnp.isfinite(scales), True)
        )
        settings_ok = (alpha >= 0) & (alpha <= 1) & _checks.valid_base(base) & (jnp.sum(keep) >= 2)
        ok = finite & settings_ok
        # Keep non-finite values out of the solvers (NaN matrices can stall them).
        rows = ScaledPoints(jnp.where(ok, points, 0.0), jnp.where(ok & keep, scales, 1.0))
        if d2 is not None:
            d2 = jnp.where(ok, d2, 0.0)
        if isinstance(self.solver, Exact):
            lam = exact_spectrum(rows, alpha, keep, self.solver.eigensolver, d2)
            value = entropy_of_spectrum(lam, t, base)
            stderr = jnp.zeros_like(value)
        else:
            value, stderr = self._slq(rows, keep, t, alpha, base, key)
        valid = ok & (t > 0) & jnp.isfinite(t)
        return Estimate(jnp.where(valid, value, jnp.nan), jnp.where(valid, stderr, jnp.nan))

    def _slq(self, rows, keep, t, alpha, base, key) -> Estimate:
        solver = self.solver
        m = rows.points.shape[0]
        if self._operator(m, rows.points.dtype) == "dense":
            op = dense_operator(rows, alpha, keep)
        else:
            devices = 1 if solver.mesh is None else solver.mesh.devices.size
            block = min(solver.block_size, -(-m // devices))
            pad = (-m) % (block * devices)
            rows = ScaledPoints(jnp.pad(rows.points, ((0, pad), (0, 0))), jnp.pad(rows.scales, (0, pad), constant_values=1.0))
            keep = jnp.pad(keep, (0, pad))
            op = blockwise_operator(rows, alpha, keep, block_size=block, mesh=solver.mesh)
        return slq_entropy(op, key, jnp.maximum(t, 0), base, solver, num_rows=m)


def _check_numbers(t, alpha, base):
    return (
        _checks.check_positive(t, "t", allow_array=True),
        _checks.check_alpha(alpha),
        _checks.check_base(base),
    )


def _entropy_for(bandwidth: Bandwidth, solver, n: int, dtype, key):
    """The :class:`DiffusionEntropy` of a call, after the checks that need its solver."""
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
    return DiffusionEntropy(bandwidth.rule, bandwidth.k, solver)


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


def dse_estimate(x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None, key=None, max_n=None) -> Estimate:
    """:func:`dse` with its standard error: an :class:`Estimate` ``(value, stderr)``.

    ``stderr`` is 0 for the exact solver; for :class:`jaxdse.SLQ` it combines the
    probe-to-probe spread and the quadrature error (``value +- 2 stderr``).
    """
    solver = as_solver(solver)
    x, bandwidth, mask = check_points_and_bandwidth(x, sigma, mask)
    t, alpha, base = _check_numbers(t, alpha, base)
    if key is not None:
        key = _checks.as_key(key)
    if max_n is not None:
        _checks.check_int(max_n, "max_n", minimum=2)
        if key is None:
            raise ValueError("max_n needs key= (a jax.random key or an integer seed) to draw the subsample")
        if mask is not None:
            raise ValueError("max_n and mask cannot be combined: subsample the kept rows yourself")
        x, key = subsample(x, key, max_n)
    entropy = _entropy_for(bandwidth, solver, x.shape[0], x.dtype, key)
    params = (bandwidth.value if bandwidth.rule == "fixed" else 0.0, t, alpha, base)
    _check_median(entropy, x, params, mask)
    key = jax.random.key(0) if key is None else key
    return _estimate(x, mask, params, key, entropy=entropy)


def dse(x, *, sigma=10.0, t=1.0, alpha=0.0, base=2.0, mask=None, solver=None, key=None, max_n=None):
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
        single eigendecomposition.
      alpha: anisotropy exponent in [0, 1].
      base: log base; 2 gives bits (default), ``e`` nats.
      mask: optional ``[n]`` bool; the result equals ``dse(x[mask])``.
      solver: :class:`jaxdse.Exact` (default) or :class:`jaxdse.SLQ` (needs
        ``key``; :func:`dse_estimate` also returns its standard error), or the
        shorthands ``"exact"``, ``"eigh"``, ``"slq"``.
      key: ``jax.random`` key or integer seed, for ``SLQ`` and ``max_n``.
      max_n: explicit subsampling, off by default: if ``n > max_n``, use
        ``max_n`` rows drawn uniformly without replacement with ``key``.

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
    return dse_estimate(x, sigma=sigma, t=t, alpha=alpha, base=base, mask=mask, solver=solver, key=key, max_n=max_n).value


def subsample(x, key, max_n: int):
    """``max_n`` rows of ``x`` drawn uniformly without replacement (all if fewer).

    Returns ``(rows, key)`` with a fresh key for what follows.
    """
    n = x.shape[0]
    if n <= max_n:
        return x, key
    key, sub = jax.random.split(key)
    idx = jax.random.choice(sub, n, (max_n,), replace=False)
    return x[jnp.sort(idx)], key


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
    params = (bandwidth.value if bandwidth.rule == "fixed" else 0.0, 1.0, alpha, 2.0)
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


def dsmi_terms(z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, **options) -> MutualInformation:
    """:func:`dsmi` with its per-class terms and standard error (a :class:`jaxdse.MutualInformation`)."""
    solver = as_solver(solver)
    as_options(options)  # unknown or invalid settings first
    z, bandwidth, _ = check_points_and_bandwidth(z, sigma, None, name="z")
    t, alpha, base = _check_numbers(t, alpha, base)
    if key is not None:
        key = _checks.as_key(key)
    entropy = _entropy_for(bandwidth, solver, 2 if isinstance(solver, Exact) else z.shape[0], z.dtype, key)
    params = (bandwidth.value if bandwidth.rule == "fixed" else 0.0, t, alpha, base)
    _check_median(entropy, z, params, None)
    return mutual_information(z, y, entropy=entropy, params=params, key=key, **options)


def dsmi(z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, **options):
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
        ``n_clusters`` equal-width bins) or continuous vectors ``[n, d']``
        (clustered into ``n_clusters`` groups).
      key: ``jax.random`` key or integer seed; required for ``"subsample"``.
      sigma, t, alpha, base, solver: as in :func:`jaxdse.dse`; an array ``t``
        ``[*T]`` gives one DSMI per time from the same eigenvalues and subsets.
      **options: the estimator's settings, :class:`jaxdse.MIOptions`
        (``num_repetitions=5``, ``estimator``, ``comparison``, ``n_clusters``,
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
    1.0
    """
    return dsmi_terms(z, y, key=key, sigma=sigma, t=t, alpha=alpha, base=base, solver=solver, **options).value

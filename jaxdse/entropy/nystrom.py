"""Nystrom low-rank DSE: ``m`` landmarks instead of the ``n x n`` kernel.

With landmarks ``L`` ``[m, d]`` (rows of the data), ``C = G(x, L)`` ``[n, m]``
and ``W = G(L, L)`` ``[m, m]``, the kernel is approximated by
``K ~ C W^+ C^T = F F^T`` with ``F = C W^{+1/2}`` ``[n, m]``. ``W^{+1/2}`` is the
pseudo-inverse square root: eigenvalues of ``W`` below ``RCOND * m * eps`` are
dropped (a rank-deficient landmark matrix, e.g. duplicated landmarks, gives a
lower-rank factor, never NaN). The cutoff is absolute: ``W``'s entries lie in
[0, 1] and rounding moves each by a few eps, so its eigenvalues by at most about
``m eps``. (A cutoff relative to ``max eig(W)``, which is about m on a smooth
kernel, dropped real directions: in float32 the error then grew with m.)

Anisotropy (``alpha``): ``q = F (F^T 1)``, ``F <- diag(q^-alpha) F``. Degrees
``d = F (F^T 1)``. The nonzero eigenvalues of ``S = D^-1/2 F F^T D^-1/2`` are
those of the ``m x m`` matrix ``A = F^T D^-1 F``; the other ``n - m`` are 0 and
add nothing to the entropy. ``F`` is computed in row blocks and never held
whole: one pass for ``F^T 1`` (two with anisotropy), one for ``A``:
``O(n m (d + m))`` time, ``O(m^2 + block m)`` memory. Rows a mask drops get
zero rows in ``F``.

Error indicator (``Estimate.stderr``): the same passes also give the DSE of
the first ``m/2`` landmarks, ``H_half``, and the share ``mu`` of the diffusion
operator's trace that the factor misses: ``diag K = 1`` exactly for the
Gaussian kernel, so row ``i`` misses ``(1 - |F_i|^2) / d_i`` (times the
anisotropy weights; at most 1, the most an eigenvalue of ``S`` can be), and
``mu = missed / (missed + tr A)`` is the probability mass at t = 1 that the
factor's spectrum does not hold. ``stderr = |H - H_half| + mu log_b(n) + h_b(mu)``
(see :func:`indicator`); :class:`LowRankWarning` is raised eagerly above 0.05 bits.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.entropy.passes import Sums, accumulate, accumulate_sharded, blocked
from jaxdse.entropy.spectral import entropy_of_spectrum
from jaxdse.kernels.points import _power_of_two_scale, kernel, resolve_scales, sq_distances, standardise, zscore
from jaxdse.solvers._linalg import HIGHEST, _eigh, symmetric_eigvals
from jaxdse.solvers.diffusion import resolve_eigensolver
from jaxdse.solvers.objects import MEDIAN_SAMPLE, Estimate, LowRankWarning, Nystrom

RCOND = 1.0  # cutoff on W's eigenvalues, in units of m * eps
WARN_BITS = 0.05


# --------------------------------------------------------------------------- landmarks


def row_scores(key, start, count):
    """Uniform scores of rows ``start .. start + count - 1``: ``U(fold_in(key, i))``, one per row.

    The uniform draw keeps the rows of highest score, so the same rows are chosen
    whatever the order of batches.
    """
    idx = start + jnp.arange(count, dtype=jnp.uint32)
    return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(idx)


def top_rows(key, keep, size):
    """Indices of the ``size`` kept rows of highest :func:`row_scores`, by descending score."""
    n = keep.shape[0]
    scores = jnp.where(keep, row_scores(key, 0, n), -1.0)
    return jax.lax.top_k(scores, min(size, n))[1]


def kmeanspp(key, points, m):
    """Indices of ``m`` k-means++ seeds among ``points`` ``[s, d]`` (first: row 0)."""
    sq = jnp.sum(points * points, 1)

    def dist_to(i):
        p = points[i]
        return jnp.maximum(sq - 2.0 * jnp.matmul(points, p, precision=HIGHEST) + p @ p, 0.0)

    def step(j, carry):
        chosen, d2 = carry
        logits = jnp.where(d2 > 0, jnp.log(jnp.where(d2 > 0, d2, 1.0)), -jnp.inf)
        logits = jnp.where(jnp.any(d2 > 0), logits, 0.0)
        nxt = jax.random.categorical(jax.random.fold_in(key, j), logits)
        return chosen.at[j].set(nxt), jnp.minimum(d2, dist_to(nxt))

    chosen = jnp.zeros(m, jnp.int32)
    chosen, _ = jax.lax.fori_loop(1, m, step, (chosen, dist_to(0)))
    return chosen


# --------------------------------------------------------------------------- preparation


class Prepared(NamedTuple):
    """Standardised points ``[n, d]``, their bandwidths ``[n]`` and the landmarks ``[m, d]``, ``[m]``."""

    points: jax.Array
    scales: jax.Array
    landmarks: jax.Array
    landmark_scales: jax.Array


class Factor(NamedTuple):
    """Per-row factors (DSMI): ``F`` ``[n, m]``, ``Fh`` ``[n, m/2]`` (the first half of the landmarks) and the
    bandwidths ``[n]``."""

    F: jax.Array
    Fh: jax.Array
    scales: jax.Array


def standardise_with(x, keep, standardize):
    """``(y, e, shift)``: :func:`jaxdse.affinity.standardise` and the map it applied, ``y = (x - shift) 2^-e``."""
    if standardize:
        x = zscore(x, keep)
    y, e = standardise(x, keep)
    w = jnp.ones(x.shape[0], x.dtype) if keep is None else keep.astype(x.dtype)
    xm = jnp.where(w[:, None] > 0, x, 0.0)
    shift = jnp.matmul(w, xm, precision=HIGHEST) / jnp.sum(w)
    return y, e, shift


def sample_scales(bandwidth: Bandwidth, sample, n, dtype, e):
    """Bandwidths ``[n]`` from the rule: numbers and ``sqrt_dim`` as always, ``median`` on ``sample`` rows."""
    d = sample.shape[1]
    if bandwidth.rule != "median":
        return resolve_scales(bandwidth, (n, d), dtype, e)
    d2 = sq_distances(sample, sample)
    iu, ju = np.triu_indices(sample.shape[0], k=1)
    med = jnp.median(d2[iu, ju])
    return jnp.broadcast_to(jnp.sqrt(jnp.where(med > 0, med, jnp.nan) / 2.0), (n,))


def choose_landmarks(solver: Nystrom, key, sample, sample_keep):
    """Landmark rows ``[m, d]`` from the uniform ``sample`` (ordered by descending score)."""
    m = solver.num_landmarks
    if solver.landmarks == "kmeans++":
        pool = sample[: min(sample.shape[0], 4 * m)]
        idx = kmeanspp(jax.random.fold_in(key, 1), jax.lax.stop_gradient(pool), m)
        return pool[idx], jnp.all(sample_keep[: pool.shape[0]])
    return sample[:m], jnp.all(sample_keep[:m])


def prepare(solver: Nystrom, bandwidth: Bandwidth, x, keep, key, standardize=False) -> Prepared:
    """Standardise ``x`` ``[n, d]`` on the kept rows, resolve the bandwidth, pick the landmarks."""
    n, d = x.shape
    keep = jnp.ones(n, bool) if keep is None else keep
    y, e, shift = standardise_with(x, keep, standardize)
    fixed = solver.fixed_landmarks
    idx = top_rows(jax.random.fold_in(key, 0), keep, solver.sample_size)
    sample, sample_keep = y[idx], keep[idx]
    scales = sample_scales(bandwidth, sample[: min(MEDIAN_SAMPLE, sample.shape[0])], n, y.dtype, e)
    if fixed is not None:
        if fixed.shape[1] != d:
            raise ValueError(f"landmarks: an array of width {fixed.shape[1]} for points of width d={d}")
        L = _power_of_two_scale(jnp.asarray(fixed, y.dtype) - shift, -e)
        enough = True
    else:
        L, enough = choose_landmarks(solver, key, sample, sample_keep)
    scales = jnp.where(enough, scales, jnp.nan)  # fewer kept rows than landmarks: NaN
    return Prepared(y, scales, L, jnp.broadcast_to(scales[0], (L.shape[0],)))


# --------------------------------------------------------------------------- the factor and its passes


def inv_sqrt(W):
    """``W^{+1/2}`` ``[m, m]`` (``V diag(w^-1/2) V^T`` restricted to eigenvalues above the cutoff) as ``V diag(.)``."""
    m = W.shape[0]
    w, V = _eigh(W)
    cut = RCOND * m * jnp.finfo(W.dtype).eps
    ok = w > cut
    return V * jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, w, 1.0)), 0.0)[None, :]


def factor_maps(prep: Prepared):
    """``(R, Rh)``: ``F = C R`` for all landmarks, ``Fh = C[:, :h] Rh`` for the first ``h = m // 2``."""
    L, sL = prep.landmarks, prep.landmark_scales
    W = kernel(sq_distances(L, L), sL, sL)
    W = jnp.where(jnp.eye(L.shape[0], dtype=bool), 1.0, W)
    h = L.shape[0] // 2
    return inv_sqrt(W), inv_sqrt(W[:h, :h])


def factor_rows(prep: Prepared, maps, points, scales, keep):
    """``(F, Fh)`` for a block of rows ``[B, d]`` (zero rows where not kept)."""
    R, Rh = maps
    C = kernel(sq_distances(points, prep.landmarks), scales, prep.landmark_scales)
    C = jnp.where(keep[:, None], C, 0.0)
    h = Rh.shape[0]
    return jnp.matmul(C, R, precision=HIGHEST), jnp.matmul(C[:, :h], Rh, precision=HIGHEST)


def eigenvalues(A):
    """Eigenvalues of the symmetric PSD ``A``, those within rounding (``eps`` times the largest) set to 0.

    A floor of ``sqrt(m) eps`` dropped real eigenvalues of smooth kernels in float32, whose many small terms
    carry entropy (-0.0005 bits at DSE 0.26, -0.002 at DSE 2); none at all kept rounding noise (+0.0003).
    """
    lam = symmetric_eigvals(0.5 * (A + A.T), resolve_eigensolver("auto"))
    floor = jnp.finfo(A.dtype).eps * jnp.max(jnp.abs(lam))
    return jnp.where(jnp.abs(lam) > floor, lam, 0.0)


def indicator(h_full, h_half, mu, count, base):
    """The error indicator: ``|H_m - H_{m/2}| + mu log_b(n) + h_b(mu)``, in units of ``base``.

    ``H_m - H_{m/2}`` is the change from halving the landmarks (the error at
    ``m/2`` is about twice that at ``m`` when the error falls like ``1/m``).
    ``mu`` is the share of the operator's trace the factor misses; an entropy
    of ``n`` outcomes moves by at most ``mu log(n - 1) + h(mu)`` when a share
    ``mu`` of its probability moves (Fannes' bound, ``h`` the binary entropy).
    Before this term the indicator used the kernel's missed trace,
    ``1 - |F|_F^2 / n``, which on heavy-tailed data (isolated points, each an
    eigenvalue near 1 that the factor leaves out) was half the error.
    """
    mu = jnp.clip(mu, 0.0, 1.0)
    log_base = jnp.log(jnp.asarray(base, mu.dtype))
    inside = (mu > 0) & (mu < 1)
    safe = jnp.where(inside, mu, 0.5)
    binary = jnp.where(inside, -(safe * jnp.log(safe) + (1 - safe) * jnp.log1p(-safe)), 0.0)
    return jnp.abs(h_full - h_half) + (mu * jnp.log(count) + binary) / log_base


def entropy_from_sums(sums: Sums, t, base) -> Estimate:
    """``Estimate(DSE, indicator)`` from accumulated :class:`Sums` (``t`` may be an array ``[*T]``)."""
    h = entropy_of_spectrum(eigenvalues(sums.A), t, base)
    hh = entropy_of_spectrum(eigenvalues(sums.Ah), t, base)
    total = sums.missed + jnp.trace(sums.A)
    mu = jnp.where(total > 0, sums.missed / jnp.where(total > 0, total, 1.0), 1.0)
    return Estimate(h, jax.lax.stop_gradient(indicator(h, hh, mu, sums.count, base)))


def dse_of_prepared(solver: Nystrom, prep: Prepared, keep, t, alpha, base) -> Estimate:
    """DSE of the kept rows of prepared points, by two passes over row blocks."""
    maps = factor_maps(prep)
    blocks = blocked((prep.points, prep.scales, keep), solver.block_size)

    def factors(points, scales, kb):
        F, Fh = factor_rows(prep, maps, points, jnp.where(kb, scales, 1.0), kb)
        return F, Fh, kb

    if solver.mesh is None:
        sums = accumulate(blocks, factors, alpha)
    else:
        sums = accumulate_sharded(blocks, factors, alpha, solver.mesh)
    return entropy_from_sums(sums, t, base)


def factor_of_prepared(solver: Nystrom, prep: Prepared) -> Factor:
    """The per-row factors of every row (for DSMI's subsets), computed in row blocks."""
    maps = factor_maps(prep)
    n = prep.points.shape[0]
    blocks = blocked((prep.points, prep.scales), solver.block_size)
    F, Fh = jax.lax.map(lambda b: factor_rows(prep, maps, b[0], b[1], jnp.ones(b[0].shape[0], bool)), blocks)
    return Factor(F.reshape(-1, F.shape[-1])[:n], Fh.reshape(-1, Fh.shape[-1])[:n], prep.scales)


def dse_of_factor(rows: Factor, keep, t, alpha, base) -> Estimate:
    """DSE of the kept rows of a :class:`Factor` (one block)."""
    blocks = jax.tree.map(lambda a: a[None], (rows.F, rows.Fh, keep))

    def factors(F, Fh, kb):
        return jnp.where(kb[:, None], F, 0.0), jnp.where(kb[:, None], Fh, 0.0), kb

    return entropy_from_sums(accumulate(blocks, factors, alpha), t, base)


# --------------------------------------------------------------------------- the entropy the estimators use


@dataclasses.dataclass(frozen=True)
class NystromEntropy:
    """DSE of masked subsets with the Nystrom solver (a :class:`jaxdse.engine.SubsetEntropy`).

    ``params = (sigma, t, alpha, base, key)``: the key draws the landmarks, once
    for the whole set. ``factored``: :meth:`prepare` returns the per-row
    :class:`Factor` (DSMI gathers subsets of its rows); otherwise the points
    and landmarks (:func:`jaxdse.dse`: blockwise passes, no ``[n, m]`` array).
    """

    rule: str = "fixed"
    k: int | None = None
    solver: Nystrom = Nystrom()
    standardize: bool = False
    factored: bool = False
    shares_pairwise = False

    def prepare(self, z, params, keep=None):
        prep = prepare(self.solver, Bandwidth(self.rule, params[0], self.k), z, keep, params[4], self.standardize)
        return factor_of_prepared(self.solver, prep) if self.factored else prep

    def subset_bytes(self, m: int, dtype) -> int:
        L = self.solver.num_landmarks
        return int((4 * m * L + 4 * L * L) * np.dtype(dtype).itemsize)

    def __call__(self, rows, mask, params, key, d2=None) -> Estimate:
        _, t, alpha, base = params[:4]
        n, dtype = rows.scales.shape[0], rows.scales.dtype
        keep = jnp.ones(n, bool) if mask is None else mask
        t, alpha = jnp.asarray(t, dtype), jnp.asarray(alpha, dtype)
        leaves = (rows.F, rows.Fh) if self.factored else (rows.points,)
        finite = jnp.all(jnp.stack([jnp.all(jnp.where(keep[:, None], jnp.isfinite(a), True)) for a in leaves]))
        finite = finite & jnp.all(jnp.where(keep, jnp.isfinite(rows.scales), True))
        if not self.factored:
            finite = finite & jnp.all(jnp.isfinite(rows.landmarks)) & jnp.all(jnp.isfinite(rows.landmark_scales))
        ok = finite & (alpha >= 0) & (alpha <= 1) & _checks.valid_base(base) & (jnp.sum(keep) >= 2)
        clean = jax.tree.map(lambda a: jnp.where(ok, a, 1.0), rows)
        if self.factored:
            est = dse_of_factor(clean, keep, t, jnp.clip(alpha, 0, 1), base)
        else:
            est = dse_of_prepared(self.solver, clean, keep, t, jnp.clip(alpha, 0, 1), base)
        valid = ok & (t > 0) & jnp.isfinite(t)
        return Estimate(jnp.where(valid, est.value, jnp.nan), jnp.where(valid, est.stderr, jnp.nan))


def entropy_for(
    bandwidth: Bandwidth, solver: Nystrom, n: int, key, precomputed=None, standardize=False, factored=False
):
    """The :class:`NystromEntropy` of a call, after the checks that need its solver."""
    if precomputed:
        raise ValueError("solver: Nystrom needs points, not a precomputed matrix; use Exact() or SLQ()")
    if bandwidth.rule == "knn":
        raise ValueError(
            "sigma: the 'knn' rule is not available with solver=Nystrom (per-point neighbours need all n^2 "
            "distances); pass a number, 'median' or 'sqrt_dim'"
        )
    if key is None and solver.fixed_landmarks is None:
        raise ValueError("solver=Nystrom(...) needs key= (a jax.random key or an integer seed): it draws landmarks")
    if solver.num_landmarks > n:
        raise ValueError(f"solver: num_landmarks={solver.num_landmarks} must not exceed the number of rows n={n}")
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be True or False, got {standardize!r}")
    if standardize and solver.fixed_landmarks is not None:
        raise ValueError("landmarks: an array of landmarks does not combine with standardize=True")
    return NystromEntropy(bandwidth.rule, bandwidth.k, solver, standardize, factored)


def warn_if_coarse(est, base):
    """Eagerly, a :class:`LowRankWarning` when the indicator exceeds 0.05 bits (nothing under ``jit``)."""
    stderr = est.stderr
    if not _checks.is_concrete(stderr):
        return
    bits = np.asarray(stderr) * np.log(float(base)) / np.log(2.0)
    if np.any(bits > WARN_BITS):
        warnings.warn(
            f"Nystrom: the error indicator is {float(np.nanmax(bits)):.3g} bits (> {WARN_BITS}); "
            "use more landmarks (num_landmarks) or the exact solver",
            LowRankWarning,
            stacklevel=3,
        )

"""Affinities -> diffusion operator -> its spectrum.

With ``q = G 1`` and ``K_ij = G_ij / (q_i^alpha q_j^alpha)`` (Coifman-Lafon
anisotropy with exponent ``alpha`` in [0, 1]), the diffusion operator is the
random walk ``P = D^-1 K`` with ``D = diag(K 1)``. It is similar to the symmetric
``S = D^-1/2 K D^-1/2 = diag(r) G diag(r)``, ``r = q^-alpha / sqrt(deg)``, whose
eigenvalues (real, in [-1, 1], the largest exactly 1) are computed here. The
reference package's operator is ``alpha = 0``.

``S`` has the known eigenpair ``(1, v)`` with ``v = sqrt(deg) / |sqrt(deg)|``. The
exact solvers work on the deflated ``S - v v^T`` and put the 1 back: in float32
this keeps the eigensolver's noise floor (about ``eps * |S|``) from swamping the
small eigenvalues when the kernel is nearly constant.

Rows that a mask drops get zero rows and columns, hence eigenvalue 0 (set
exactly), which adds nothing to the entropy: a masked call equals a call on the
kept rows.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdse import _checks
from jaxdse.kernels.points import HIGHEST, ScaledPoints, affinity_matrix, prepare_points, usable
from jaxdse.solvers._linalg import symmetric_eigvals


class Normalisation(NamedTuple):
    """``S = diag(r) G diag(r)`` and its unit eigenvector ``v`` for eigenvalue 1 (0 on dropped rows)."""

    r: jax.Array
    v: jax.Array


def normalisation(kernel_matvec, keep, alpha, dtype) -> Normalisation:
    """The diffusion normalisation from products with the affinity matrix ``G``.

    ``kernel_matvec(u)`` returns ``G u`` for ``u`` ``[n]``; one product gives the
    degrees (two with anisotropy). Shared by the dense and the matrix-free
    operators.
    """
    w = keep.astype(dtype)
    if isinstance(alpha, (int, float)) and alpha == 0:
        q_alpha = w
    else:
        q = jnp.where(keep, kernel_matvec(w), 1.0)
        q_alpha = jnp.where(keep, jnp.exp(-jnp.asarray(alpha, w.dtype) * jnp.log(q)), 0.0)
    deg = jnp.where(keep, q_alpha * kernel_matvec(q_alpha), 1.0)
    r = jnp.where(keep, q_alpha * jax.lax.rsqrt(deg), 0.0)
    sqrt_deg = jnp.where(keep, jnp.sqrt(deg), 0.0)
    return Normalisation(r, sqrt_deg / jnp.linalg.norm(sqrt_deg))


def operator_from_affinity(G, alpha, keep):
    """``(S [n, n], v [n])`` from affinities ``G`` whose rows and columns not kept are 0."""
    norm = normalisation(lambda u: jnp.matmul(G, u, precision=HIGHEST), keep, alpha, G.dtype)
    return G * norm.r[:, None] * norm.r[None, :], norm.v


def dense_symmetric_operator(points: ScaledPoints, alpha, keep, d2=None):
    """``(S [n, n], v [n])`` from prepared points (and their squared distances ``d2``, if at hand)."""
    return operator_from_affinity(affinity_matrix(points, keep, d2), alpha, keep)


def resolve_eigensolver(eigensolver: str) -> str:
    """``"auto"``: bisection on CPU (fastest there), LAPACK-style ``eigh`` elsewhere.

    On GPUs the bisection's Sturm counts are a sequential loop over n, while
    ``eigh`` runs in cuSOLVER; on CPU the eigenvalue-only path is about 2x faster
    (2.2x at n = 2000 and 4000, ``benchmarks/results_core.md``).
    """
    if eigensolver != "auto":
        return eigensolver
    return "tridiagonal" if jax.default_backend() == "cpu" else "eigh"


def exact_spectrum(points: ScaledPoints, alpha, keep, eigensolver: str, d2=None):
    """The ``n`` diffusion eigenvalues of prepared points, in order of magnitude (see :func:`spectrum_of`)."""
    S, v = dense_symmetric_operator(points, alpha, keep, d2)
    return spectrum_of(S, v, keep, eigensolver)


def spectrum_of(S, v, keep, eigensolver: str):
    """The eigenvalues of ``S`` (eigenpair ``(1, v)``), in order of magnitude (first is 1).

    The deflated ``S - v v^T`` has eigenvalue 0 in the direction ``v`` and one
    exact 0 per row not kept; the solver returns those at its noise floor. The
    ``1 + dropped`` eigenvalues of smallest magnitude are therefore replaced: the
    smallest by the known 1, the next ``dropped`` by exact zeros.
    """
    deflated = S - v[:, None] * v[None, :]
    w = symmetric_eigvals(deflated, resolve_eigensolver(eigensolver))
    w = w[jnp.argsort(jnp.abs(w))]
    i = jnp.arange(w.shape[-1])
    dropped = jnp.sum(~keep)
    return jnp.where(i == 0, 1.0, jnp.where(i <= dropped, 0.0, w))


def symmetric_diffusion_operator(x, *, sigma=10.0, alpha=0.0, mask=None):
    """Symmetric conjugate ``S = D^-1/2 K D^-1/2`` ``[n, n]`` and its top eigenvector.

    Returns ``(S, v)`` where ``S v = v`` (eigenvalue 1) and ``|v| = 1``. Rows and
    columns that ``mask`` drops are 0 and ``v`` is 0 there. ``sigma`` as in
    :func:`jaxdse.gaussian_affinity`.

    >>> import jax.numpy as jnp
    >>> S, v = symmetric_diffusion_operator(jnp.eye(3) * 100.0)
    >>> [round(float(s), 3) for s in jnp.diag(S)]
    [1.0, 1.0, 1.0]
    """
    x, bandwidth, mask = _checks.check_points_and_bandwidth(x, sigma, mask)
    alpha = _checks.check_alpha(alpha)
    keep = jnp.ones(x.shape[0], bool) if mask is None else mask
    points = prepare_points(x, bandwidth, keep)
    ok = usable(points, keep) & (jnp.asarray(alpha) >= 0) & (jnp.asarray(alpha) <= 1)
    # NaN under jit for non-finite kept rows, invalid sigma or alpha, fewer than two kept rows.
    points = ScaledPoints(jnp.where(ok, points.points, 0.0), jnp.where(ok & keep, points.scales, 1.0))
    S, v = dense_symmetric_operator(points, alpha, keep)
    return jnp.where(ok, S, jnp.nan), jnp.where(ok, v, jnp.nan)


def affinity_eigenvalues(G, alpha, mask=None, eigensolver="auto"):
    """The ``n`` diffusion eigenvalues ``[n]`` (ascending) of an affinity matrix ``G`` ``[n, n]``.

    Rows that ``mask`` drops (0 in ``G``) give exact zeros; non-finite ``G``
    gives NaN.
    """
    return _affinity_spectrum(
        G, jnp.ones(G.shape[0], bool) if mask is None else mask, alpha, resolve_eigensolver(eigensolver)
    )


def _affinity_spectrum_impl(G, keep, alpha, eigensolver):
    ok = jnp.all(jnp.where(keep[:, None] & keep[None, :], jnp.isfinite(G), True))
    ok = ok & (jnp.asarray(alpha) >= 0) & (jnp.asarray(alpha) <= 1)
    G = jnp.where(ok, G, jnp.where(jnp.eye(G.shape[0], dtype=bool) & keep[:, None], 1.0, 0.0))
    S, v = operator_from_affinity(G, alpha, keep)
    lam = jnp.sort(spectrum_of(S, v, keep, eigensolver))
    return jnp.where(ok, lam, jnp.nan)


_affinity_spectrum = jax.jit(_affinity_spectrum_impl, static_argnames=("eigensolver",))

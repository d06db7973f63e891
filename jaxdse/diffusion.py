"""Affinities -> diffusion operator -> its spectrum (SPEC section 1, steps 2-3).

With ``q = G 1`` and ``K_ij = G_ij / (q_i^alpha q_j^alpha)`` (Coifman-Lafon
anisotropy), the diffusion operator is ``P = D^-1 K`` with ``D = diag(K 1)``. It is
similar to the symmetric ``S = D^-1/2 K D^-1/2``, whose eigenvalues (real, in
[-1, 1], the largest exactly 1) are computed here.

``S`` has the known eigenpair ``(1, v)`` with ``v = sqrt(deg) / |sqrt(deg)|``. The
solvers work on the deflated ``S - v v^T`` and put the 1 back: in float32 this
keeps the noise floor of the eigensolver (about ``eps * |S|``) from swamping the
small eigenvalues when the kernel is nearly constant.

Masked-out rows get zero rows and columns, hence eigenvalue 0 (set exactly, see
``_spectrum_of``), which adds nothing to the entropy: a masked call equals a call
on the kept rows.
"""

from __future__ import annotations

import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.affinity import (
    HIGHEST,
    Bandwidth,
    affinity_from_sq_distances,
    check_knn_k,
    pairwise_sq_distances,
    parse_bandwidth,
)

METHODS = ("auto", "eigh", "tridiagonal")

_DEFAULT_BUDGET = 8 * 2**30
_memory_budget = None


def set_memory_budget(num_bytes: int | None) -> None:
    """Set the memory budget (bytes) for dense ``n x n`` computations.

    ``None`` restores the default: the ``JAXDSE_MEMORY_BUDGET`` environment
    variable if set (bytes, or with a ``K``/``M``/``G`` suffix), else 8 GiB.
    """
    global _memory_budget
    if num_bytes is not None and (not isinstance(num_bytes, (int, np.integer)) or num_bytes <= 0):
        raise ValueError(f"num_bytes must be a positive integer or None, got {num_bytes!r}")
    _memory_budget = None if num_bytes is None else int(num_bytes)


def get_memory_budget() -> int:
    """The memory budget in bytes for dense ``n x n`` computations."""
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


# Dense n x n float arrays alive at the peak of the exact path: distances,
# affinities, the operator, and the solver's workspace (eigenvectors for eigh).
_DENSE_ARRAYS = {"auto": 4, "tridiagonal": 4, "eigh": 5}


def dense_bytes(n: int, dtype, method: str = "auto") -> int:
    """Estimated peak bytes of the exact path for ``n`` points."""
    return _DENSE_ARRAYS.get(method, 5) * n * n * np.dtype(dtype).itemsize


def check_memory(n: int, dtype, method: str, what: str = "the diffusion spectrum") -> None:
    need = dense_bytes(n, dtype, method)
    budget = get_memory_budget()
    if need > budget:
        gib = 2**30
        raise MemoryError(
            f"{what} at n={n} needs about {need / gib:.1f} GiB of dense n x n arrays "
            f"(method={method!r}, {np.dtype(dtype).name}), above the memory budget of {budget / gib:.1f} GiB. "
            "Pass a random subset of the rows (explicit subsampling), or raise the budget with "
            "jaxdse.set_memory_budget(bytes) or JAXDSE_MEMORY_BUDGET if the machine has the memory."
        )


# ---------------------------------------------------------------------------
# The symmetric operator


def symmetric_diffusion_operator(x, *, sigma=10.0, alpha=0.0, mask=None):
    """Symmetric conjugate ``S = D^-1/2 K D^-1/2`` ``[n, n]`` and its top eigenvector.

    Returns ``(S, v)`` where ``S v = v`` (eigenvalue 1) and ``|v| = 1``. Masked
    rows and columns of ``S`` are 0 and ``v`` is 0 there.
    """
    bandwidth = parse_bandwidth(sigma)
    x = jnp.asarray(x)
    d2 = pairwise_sq_distances(x, mask)
    G = affinity_from_sq_distances(d2, bandwidth, x.shape[1], mask)
    return _operator_from_affinity(G, alpha, mask)


def _operator_from_affinity(G, alpha, mask):
    keep = jnp.ones(G.shape[0], bool) if mask is None else mask
    q = jnp.sum(G, axis=1)
    q = jnp.where(keep, q, 1.0)
    # K = G / (q_i^alpha q_j^alpha); alpha = 0 gives K = G exactly.
    q_alpha = jnp.exp(-alpha * jnp.log(q))
    K = G * q_alpha[:, None] * q_alpha[None, :]
    deg = jnp.where(keep, jnp.sum(K, axis=1), 1.0)
    r = jnp.where(keep, jax.lax.rsqrt(deg), 0.0)
    S = K * r[:, None] * r[None, :]
    sqrt_deg = jnp.where(keep, jnp.sqrt(deg), 0.0)
    v = sqrt_deg / jnp.linalg.norm(sqrt_deg)
    return S, v


# ---------------------------------------------------------------------------
# Eigenvalue solvers for symmetric matrices


def _eigvals_tridiagonal(A):
    """All eigenvalues of symmetric ``A``: Householder tridiagonal reduction, then bisection."""
    _, d, e, _ = jax.lax.linalg.tridiagonal(A)
    return jax.scipy.linalg.eigh_tridiagonal(d, e, eigvals_only=True)


def _eigvals_eigh(A):
    return jnp.linalg.eigh(A)[0]


def _symmetric_eigvals(A, fast: bool):
    return _eigvals_tridiagonal(A) if fast else _eigvals_eigh(A)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def symmetric_eigvals(A, fast: bool = True):
    """Ascending eigenvalues of the symmetric matrix ``A`` ``[..., n, n]``.

    ``fast=True`` computes them without eigenvectors (tridiagonal reduction and
    bisection). Derivatives always use a full eigendecomposition:
    ``d lambda_i = v_i^T dA v_i``, which is exact for simple eigenvalues and gives
    the correct derivative of any symmetric function of the spectrum (such as
    an entropy) also when eigenvalues repeat.
    """
    return _symmetric_eigvals(A, fast)


@symmetric_eigvals.defjvp
def _symmetric_eigvals_jvp(fast, primals, tangents):
    (A,), (dA,) = primals, tangents
    w, V = jnp.linalg.eigh(A)
    dA = 0.5 * (dA + jnp.swapaxes(dA, -1, -2))
    dw = jnp.einsum("...ji,...jk,...ki->...i", V, dA, V, precision=HIGHEST)
    return w, dw


def _spectrum_of(S, v, method, num_masked=0, sort=True):
    """Eigenvalues of ``S`` (which has eigenpair ``(1, v)``) via deflation.

    The deflated matrix ``S - v v^T`` has eigenvalue 0 in the direction ``v`` and
    one exact 0 per masked row; the solver returns those at its noise floor. The
    ``1 + num_masked`` eigenvalues of smallest magnitude are therefore replaced:
    the smallest by the known 1, the next ``num_masked`` by exact zeros.
    Ascending if ``sort``, else in order of magnitude (enough for an entropy).
    """
    deflated = S - v[:, None] * v[None, :]
    w = symmetric_eigvals(deflated, method != "eigh")
    w = w[jnp.argsort(jnp.abs(w))]
    i = jnp.arange(w.shape[-1])
    w = jnp.where(i == 0, 1.0, jnp.where(i <= num_masked, 0.0, w))
    return jnp.sort(w) if sort else w


def diffusion_eigenvalues(x, *, sigma=10.0, alpha=0.0, mask=None, method: str = "auto"):
    """The n eigenvalues of the diffusion operator ``P`` of the points ``x`` ``[n, d]``.

    Args:
      x: points ``[n, d]`` (integer data is converted to the default float dtype).
      sigma: Gaussian bandwidth: a positive number (may be traced) or a rule,
        ``"median"``, ``"sqrt_dim"``, ``"knn"`` / ``"knn:K"`` (see
        :mod:`jaxdse.affinity`).
      alpha: anisotropy exponent in [0, 1]; 0 is the reference's operator.
      mask: optional ``[n]`` bool; ``False`` rows are ignored exactly and give
        eigenvalue 0.
      method: ``"auto"`` (default: eigenvalues-only path, with derivatives from a
        full eigendecomposition when differentiated), ``"tridiagonal"`` (same as
        auto), or ``"eigh"`` (full symmetric eigendecomposition throughout).

    Returns:
      ``[n]`` ascending eigenvalues in [-1, 1]; the largest is 1.

    Raises:
      TypeError/ValueError naming the argument for bad input; MemoryError when
      the dense computation exceeds :func:`get_memory_budget`.

    Works under ``jit`` (``method`` and string ``sigma`` static), ``vmap`` and ``grad``.
    Under ``jit`` a non-finite ``x`` gives all-NaN eigenvalues.

    >>> import jax.numpy as jnp
    >>> lam = diffusion_eigenvalues(jnp.eye(3) * 100.0)
    >>> [round(float(v), 3) for v in lam]
    [1.0, 1.0, 1.0]
    """
    x, bandwidth, alpha, mask = _check_operator_args(x, sigma, alpha, mask, method)
    return _diffusion_eigenvalues(x, bandwidth, alpha, mask, method)


def _check_operator_args(x, sigma, alpha, mask, method):
    _checks.check_choice(method, "method", METHODS)
    x = _checks.as_points(x, "x")
    n = x.shape[0]
    bandwidth = parse_bandwidth(sigma)
    alpha = _checks.check_alpha(alpha)
    mask = _checks.check_mask(mask, n)
    n_kept = n if mask is None or not _checks.is_concrete(mask) else _checks.count_true(mask)
    check_knn_k(bandwidth, n_kept)
    check_memory(n, x.dtype, method)
    return x, bandwidth, alpha, mask


def _diffusion_eigenvalues(x, bandwidth: Bandwidth, alpha, mask, method, sort=True):
    # Compiled once per shape and static configuration, so eager calls cost one
    # dispatch; inside a user's jit this is simply inlined. ``sort=False`` leaves
    # them in order of magnitude, which is all an entropy needs.
    sigma_value = bandwidth.value if bandwidth.rule == "fixed" else None
    k = bandwidth.value if bandwidth.rule == "knn" else None
    return _eigenvalues_compiled(x, sigma_value, alpha, mask, rule=bandwidth.rule, k=k, method=method, sort=sort)


@partial(jax.jit, static_argnames=("rule", "k", "method", "sort"))
def _eigenvalues_compiled(x, sigma_value, alpha, mask, *, rule, k, method, sort):
    finite = jnp.all(jnp.isfinite(x))
    # Keep non-finite input out of the solver (NaN matrices can stall it);
    # the result is NaN instead.
    x = jnp.where(finite, x, 0.0)
    d2 = pairwise_sq_distances(x, mask)
    return eigenvalues_from_sq_distances(
        d2, x.shape[1], sigma_value, alpha, mask, finite, rule=rule, k=k, method=method, sort=sort
    )


def eigenvalues_from_sq_distances(d2, d, sigma_value, alpha, mask, finite=True, *, rule, k, method, sort):
    """The diffusion spectrum from squared distances ``[n, n]`` of points in ``d`` dimensions.

    The part of the exact path after the distances, so that callers holding a
    distance matrix (DSMI's subsets of one set of points) can skip recomputing
    it; ``finite`` False makes the result NaN.
    """
    bandwidth = Bandwidth(rule, sigma_value if rule == "fixed" else k)
    G = affinity_from_sq_distances(d2, bandwidth, d, mask)
    S, v = _operator_from_affinity(G, alpha, mask)
    num_masked = 0 if mask is None else jnp.sum(~mask)
    w = _spectrum_of(S, v, method, num_masked, sort)
    alpha = jnp.asarray(alpha)
    ok = finite & (alpha >= 0) & (alpha <= 1)
    if rule == "fixed":
        ok = ok & (jnp.asarray(sigma_value) > 0)
    return jnp.where(ok, w, jnp.nan)

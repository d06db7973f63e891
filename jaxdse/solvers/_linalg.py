"""Dense decompositions that never hand the CPU's LAPACK kernels a batch.

jaxlib's CPU LAPACK kernels (jax 0.10) split a batch of matrices over XLA's
intra-op thread pool and block until the pool has done it. When as many batched
calls run at once as the pool has threads (two on a 2-core machine: one inside a
loop and one beside it, or DSE and DSMI of a vmapped population), every thread
waits for work that no thread is free to run, and the program never returns.
One matrix per call never waits on the pool. So on the CPU, each function here
runs a ``vmap`` as a loop over single matrices (:func:`jax.custom_batching.sequential_vmap`),
which is also what later jaxlib releases do inside the kernel; elsewhere it is
the plain batched call.

Reverse-mode derivatives cannot pass through such a loop, so the differentiable
ones (:func:`symmetric_eigvals`, :func:`singular_values`, :func:`spd_solve`)
carry their own rules, in which the loop only ever sees primal values:
eigenvalues to any order; singular values to first order (on the CPU a second
derivative of them raises JAX's "does not support reverse-mode autodiff" error
rather than dropping terms). The others take no derivatives (their inputs'
gradients are stopped).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxdse.kernels.points import HIGHEST


def _looped(fn):
    """``fn`` of single matrices, looped under ``vmap`` on the CPU (where reverse mode cannot pass it)."""
    looped = jax.custom_batching.sequential_vmap(fn)

    def call(*args):
        return looped(*args) if jax.default_backend() == "cpu" else fn(*args)

    return call


def _stopped(fn):
    """``fn`` with its inputs' derivatives stopped, on every backend (the same function everywhere)."""
    return lambda *args: fn(*jax.lax.stop_gradient(args))


_eigh_looped = _looped(lambda a: tuple(jnp.linalg.eigh(a)))


@jax.custom_jvp
def _eigh(a):
    return _eigh_looped(a)


@_eigh.defjvp
def _eigh_jvp(primals, tangents):
    # The textbook rule (as JAX's own): dw = diag(V^T da V), dV = V (F o V^T da V)
    # with F_ij = 1 / (w_j - w_i) off the diagonal. It calls _eigh on primal values
    # only, so derivatives of any order pass.
    (a,), (da,) = primals, tangents
    w, V = _eigh(a)
    da = 0.5 * (da + jnp.swapaxes(da, -1, -2))
    vdv = jnp.einsum("...ji,...jk,...kl->...il", V, da, V, precision=HIGHEST)
    gaps = w[..., None, :] - w[..., :, None]
    F = jnp.where(gaps == 0, 0.0, 1.0 / jnp.where(gaps == 0, 1.0, gaps))
    dV = jnp.matmul(V, F * vdv, precision=HIGHEST)
    return (w, V), (jnp.diagonal(vdv, axis1=-2, axis2=-1), dV)


eigh = _stopped(_eigh_looped)
"""``(w, V)`` of symmetric ``a``, eigenvalues ascending. No derivatives."""

qr_q = _stopped(_looped(lambda a: jnp.linalg.qr(a)[0]))
"""The orthonormal factor of ``a``'s reduced QR. No derivatives."""

lstsq = _stopped(_looped(lambda a, b: jnp.linalg.lstsq(a, b)[0]))
"""The least-squares solution of ``a x = b``. No derivatives."""

eigvals = _stopped(_looped(lambda a: jnp.linalg.eigvals(a)))
"""Eigenvalues of a general square ``a`` (complex). No derivatives."""


def _tridiagonal_eigvals(a):
    # Householder reduction (LAPACK) to tridiagonal form, then bisection (pure JAX).
    _, d, e, _ = jax.lax.linalg.tridiagonal(a)
    return jax.scipy.linalg.eigh_tridiagonal(d, e, eigvals_only=True)


_tridiagonal_eigvals_looped = _looped(_tridiagonal_eigvals)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def symmetric_eigvals(A, eigensolver: str = "tridiagonal"):
    """Eigenvalues, ascending, of the symmetric matrix ``A`` ``[n, n]``.

    ``"tridiagonal"`` computes them without eigenvectors (tridiagonal reduction
    and bisection); ``"eigh"`` with a full eigendecomposition. Derivatives always
    use the full decomposition: ``d lambda_i = v_i^T dA v_i``, exact for simple
    eigenvalues and correct for any symmetric function of the spectrum (such as
    an entropy) also when eigenvalues repeat.
    """
    return _tridiagonal_eigvals_looped(A) if eigensolver == "tridiagonal" else _eigh(A)[0]


@symmetric_eigvals.defjvp
def _symmetric_eigvals_jvp(eigensolver, primals, tangents):
    (A,), (dA,) = primals, tangents
    w, V = _eigh(A)
    dA = 0.5 * (dA + jnp.swapaxes(dA, -1, -2))
    dw = jnp.einsum("...ji,...jk,...ki->...i", V, dA, V, precision=HIGHEST)
    return w, dw


_svd = _looped(lambda a: tuple(jnp.linalg.svd(a, full_matrices=False)))
_svd_values = _looped(lambda a: jnp.linalg.svd(a, compute_uv=False))


@jax.custom_jvp
def singular_values(x):
    """Singular values of ``x`` ``[n, d]``, descending.

    Derivatives ``d s_i = u_i^T dx v_i``: exact for distinct singular values and
    correct for any symmetric function of them (such as an entropy).
    """
    return _svd_values(x)


@singular_values.defjvp
def _singular_values_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    U, s, Vt = _svd(x)
    return s, jnp.einsum("...ji,...jk,...ik->...i", U, dx, Vt, precision=HIGHEST)


_solve = _looped(lambda a, b: jnp.linalg.solve(a, b))


def spd_solve(A, B):
    """``A^-1 B`` for symmetric positive definite ``A`` ``[d, d]`` and ``B`` ``[d, k]``, differentiable in both.

    Derivatives by implicit differentiation (:func:`jax.lax.custom_linear_solve`):
    the loop solves with ``A`` again and is never itself differentiated.
    """
    return jax.lax.custom_linear_solve(
        lambda X: jnp.matmul(A, X, precision=HIGHEST), B, solve=lambda _, R: _solve(A, R), symmetric=True
    )

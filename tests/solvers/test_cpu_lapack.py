"""No batched LAPACK call on the CPU, and the rules that make that differentiable.

jaxlib's CPU LAPACK kernels spread a batch over XLA's intra-op thread pool and
wait for it; two such calls at once on a 2-core machine wait for each other
forever (``dsmi(z, y, solver=SLQ())`` on 10 classes of 40 points never returned).
Every LAPACK call jaxdse makes must therefore see one matrix at a time on the CPU
(``jaxdse.solvers._linalg``), however the caller vmaps it. Checked on the lowered program:
each LAPACK custom call states its batch dimensions.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse.monitor import make_representation_evaluator
from jaxdse.solvers import _linalg

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the loop is for the CPU's LAPACK kernels")

LAPACK_CALL = re.compile(r'custom_call @(lapack_\w+)\([^\n]*?num_batch_dims = "(\d+)"')


def lapack_calls(fn, *args):
    """``(target, batch dimensions)`` of every LAPACK call in ``jit(fn)(*args)``."""
    calls = LAPACK_CALL.findall(jax.jit(fn).lower(*args).as_text())
    assert calls, "no LAPACK call found: the check would be vacuous"
    return calls


def batched(calls):
    return sorted({target for target, dims in calls if dims != "0"})


def test_stochastic_dsmi_of_small_classes():
    y = np.repeat(np.arange(10), 40)
    z = np.zeros((400, 8), np.float32)
    calls = lapack_calls(
        lambda z, k: jaxdse.dsmi(z, y, sigma=3.0, key=k, estimator="plugin", solver=jaxdse.SLQ()), z, jax.random.key(0)
    )
    assert batched(calls) == []


@pytest.mark.parametrize("solver", ["exact", "eigh"])
def test_a_vmapped_population_of_exact_dse_and_dsmi(solver):
    y = np.repeat(np.arange(4), 10)
    Z = np.zeros((3, 40, 8), np.float32)

    def both(z):
        return jaxdse.dse(z, sigma=3.0, solver=solver), jaxdse.dsmi(
            z, y, sigma=3.0, solver=solver, key=0, num_classes=4, max_class_size=10
        )

    assert batched(lapack_calls(jax.vmap(both), Z)) == []


def test_the_vmapped_representation_evaluator_and_its_gradient():
    evaluate = make_representation_evaluator(num_classes=4, max_class_size=10)
    y = jnp.arange(40) % 4
    Z = jax.random.normal(jax.random.key(0), (2, 40, 8))

    def score(z):
        m = evaluate(z, y, z, y, jax.random.key(1))
        return sum(jnp.nan_to_num(leaf) for leaf in jax.tree.leaves(m))

    assert batched(lapack_calls(jax.vmap(score), Z)) == []
    assert batched(lapack_calls(jax.vmap(jax.grad(score)), Z)) == []


def test_derivatives_of_the_looped_decompositions_match_jax():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (3, 12, 5))
    A = jnp.einsum("bij,bik->bjk", x, x) + jnp.eye(5)
    B = jax.random.normal(k2, (3, 5, 2))
    weights = jax.random.normal(k3, (5,))

    def pairs():
        yield (
            lambda x: _linalg.singular_values(x) @ weights,
            lambda x: jnp.linalg.svd(x, compute_uv=False) @ weights,
            x,
        )
        yield (lambda A: _linalg.symmetric_eigvals(A, "eigh") @ weights, lambda A: jnp.linalg.eigvalsh(A) @ weights, A)
        yield (
            lambda A: _linalg.symmetric_eigvals(A, "tridiagonal") @ weights,
            lambda A: jnp.linalg.eigvalsh(A) @ weights,
            A,
        )
        yield (lambda A: jnp.sum(_linalg.spd_solve(A, B[0]) ** 2), lambda A: jnp.sum(jnp.linalg.solve(A, B[0]) ** 2), A)

    for ours, theirs, arg in pairs():
        np.testing.assert_allclose(jax.vmap(ours)(arg), jax.vmap(theirs)(arg), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(jax.vmap(jax.grad(ours))(arg), jax.vmap(jax.grad(theirs))(arg), rtol=1e-3, atol=1e-4)
    # Eigenvalues to second order (a Hessian of DSE goes through this rule).
    for solver in ("eigh", "tridiagonal"):
        np.testing.assert_allclose(
            jax.hessian(lambda A: _linalg.symmetric_eigvals(A, solver) @ weights)(A[0]),
            jax.hessian(lambda A: jnp.linalg.eigvalsh(A) @ weights)(A[0]),
            rtol=1e-3,
            atol=1e-4,
        )
    # ... and with respect to the right-hand side of the solve.
    g = jax.vmap(jax.grad(lambda A, B: jnp.sum(_linalg.spd_solve(A, B) ** 2), argnums=1))(A, B)
    h = jax.vmap(jax.grad(lambda A, B: jnp.sum(jnp.linalg.solve(A, B) ** 2), argnums=1))(A, B)
    np.testing.assert_allclose(g, h, rtol=1e-3, atol=1e-4)

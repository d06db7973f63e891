"""Every matrix product behind DSE, DSMI and the stochastic estimate runs at full float32 precision.

On GPUs and TPUs a float32 ``dot_general`` at ``DEFAULT`` precision may run as
TF32 or bfloat16 passes (about 3 significant digits); distances, kernels, kernel
products and the Lanczos coefficients need all of float32. The checks read the
StableHLO that ``jax.jit(...).lower(...)`` produces (the same text on every
backend): each ``dot_general`` must say ``precision = [HIGHEST, HIGHEST]``.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matfree import decomp

import jaxdse
from jaxdse import SLQ

HIGHEST = "precision = [HIGHEST, HIGHEST]"
KEY = jax.random.key(0)
SMALL_SLQ = dict(num_probes=2, num_matvecs=5, deflation_rank=2)


def slq(x, **settings):
    return jaxdse.dse(x, key=KEY, sigma=2.0, solver=SLQ(**SMALL_SLQ, **settings))


def dot_generals(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    return [line.strip() for line in text.splitlines() if "stablehlo.dot_general" in line]


def points(n=64, d=5):
    return jnp.asarray(np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))


CASES = {
    "dse exact": lambda x: jaxdse.dse(x, sigma=2.0),
    "dse eigh": lambda x: jaxdse.dse(x, sigma=2.0, solver="eigh"),
    "dse grad": jax.grad(lambda x: jaxdse.dse(x, sigma=2.0)),
    "dsmi": lambda x: jaxdse.dsmi(x, np.arange(64) % 3, key=KEY, sigma=2.0),
    "slq dense": lambda x: slq(x, operator="dense"),
    "slq blockwise": lambda x: slq(x, operator="blockwise", block_size=16),
    # The backward pass is traced by jax.grad, after the estimate's own trace:
    # matfree's Lanczos adjoint must be at full precision too.
    "slq grad": jax.grad(lambda x: slq(x, operator="dense")),
    "slq blockwise grad": jax.grad(lambda x: slq(x, operator="blockwise", block_size=16)),
    "dsmi slq": lambda x: jaxdse.dsmi(x, np.arange(64) % 3, key=KEY, sigma=2.0, solver=SLQ(**SMALL_SLQ)),
    "dsmi slq grad": jax.grad(lambda x: jaxdse.dsmi(x, np.arange(64) % 3, key=KEY, sigma=2.0, solver=SLQ(**SMALL_SLQ))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_dot_general_runs_at_highest_precision(name):
    dots = dot_generals(CASES[name], points())
    assert dots, f"{name}: no dot_general in the lowered program"
    loose = [d for d in dots if HIGHEST not in d]
    assert not loose, f"{name}: {len(loose)} of {len(dots)} dot_general at a lower precision:\n" + "\n".join(
        re.sub(r"%\S+ = ", "", d)[:240] for d in loose
    )


def test_lanczos_needs_the_precision_context():
    # matfree's Lanczos asks for no precision: its vector products (recurrence
    # coefficients, reorthogonalisation) lower at DEFAULT unless traced under
    # jax.default_matmul_precision("highest"), which the stochastic estimate does.
    A = jnp.asarray(np.diag(np.linspace(0.0, 1.0, 32)).astype(np.float32))
    tridiag = decomp.tridiag_sym(6, materialize=True, reortho="full", custom_vjp=False)

    def run(v):
        return tridiag(lambda w: jnp.matmul(A, w, precision="highest"), v).J_small

    v = jnp.ones(32) / jnp.sqrt(32.0)
    plain = dot_generals(run, v)
    assert any("precision = [DEFAULT, DEFAULT]" in d for d in plain)
    with jax.default_matmul_precision("highest"):
        assert all(HIGHEST in d for d in dot_generals(run, v))

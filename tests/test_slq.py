"""Matrix-free DSE (stochastic Lanczos quadrature) against the exact path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse.affinity import parse_bandwidth
from jaxdse.operators import blockwise_operator, dense_operator
from jaxdse.slq import _pad_rows, dse_slq


def gaussian(rng, n=300, d=16):
    return rng.normal(size=(n, d)).astype(np.float32)


def clustered(rng, n=300, d=8, k=4):
    centres = rng.normal(scale=3.0, size=(k, d))
    return (centres[np.arange(n) % k] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("operator", ["dense", "blockwise"])
@pytest.mark.parametrize("sigma", [1.5, 4.0, 12.0])
def test_close_to_exact_within_reported_error(rng, operator, sigma):
    x = gaussian(rng)
    exact = float(jaxdse.dse(x, sigma=sigma))
    r = dse_slq(x, key=jax.random.key(0), sigma=sigma, operator=operator, block_size=64)
    assert r.operator == operator and r.n == 300
    assert float(r.stderr) > 0
    assert abs(float(r.value) - exact) <= 4 * float(r.stderr) + 1e-3


def test_dse_method_slq_is_the_estimate(rng):
    x = clustered(rng)
    key = jax.random.key(3)
    assert float(jaxdse.dse(x, sigma=2.0, method="slq", key=key)) == pytest.approx(
        float(dse_slq(x, sigma=2.0, key=key).value), rel=1e-6
    )


def _coverage(x, sigma, num_keys=50):
    exact = float(jaxdse.dse(x, sigma=sigma))
    keys = jax.random.split(jax.random.key(42), num_keys)
    value, stderr = jax.vmap(lambda k: dse_slq(x, key=k, sigma=sigma)[:2])(keys)
    covered = np.abs(np.asarray(value) - exact) <= 2 * np.asarray(stderr)
    return covered.mean(), np.abs(np.asarray(value) - exact).max()


@pytest.mark.parametrize("data,sigma", [("gaussian", 5.0), ("clustered", 2.5)])
def test_error_bar_covers_exact_value_for_90_percent_of_keys(rng, data, sigma):
    x = gaussian(rng) if data == "gaussian" else clustered(rng)
    rate, worst = _coverage(x, sigma)
    assert rate >= 0.9, (rate, worst)


def test_blockwise_product_equals_dense_product(rng):
    x = jnp.asarray(gaussian(rng, n=130, d=5))
    mask = jnp.asarray(rng.random(130) > 0.2)
    V = jnp.asarray(rng.normal(size=(130, 3)).astype(np.float32))
    bandwidth = parse_bandwidth(2.0)
    for alpha in (0.0, 0.5):
        dense = dense_operator(x, bandwidth, alpha, mask)
        xp, keep = _pad_rows(x, mask, 32)
        block = blockwise_operator(xp, bandwidth, alpha, keep, block_size=32)
        Vp = jnp.concatenate([V, jnp.zeros((xp.shape[0] - 130, 3))])
        np.testing.assert_allclose(block.matmat(Vp)[:130], dense.matmat(V), atol=2e-5)
        assert np.all(np.asarray(block.matmat(Vp)[130:]) == 0)
        np.testing.assert_allclose(block.trace, dense.trace, rtol=1e-5)
        np.testing.assert_allclose(block.frobenius_sq, dense.frobenius_sq, rtol=1e-4)
        np.testing.assert_allclose(block.v[:130], dense.v, atol=1e-6)


def test_jit_equals_eager_and_t_array(rng):
    x = clustered(rng)
    key = jax.random.key(1)
    ts = jnp.array([1.0, 3.0])
    eager = dse_slq(x, key=key, sigma=2.0, t=ts)
    jitted = jax.jit(lambda x, k: dse_slq(x, key=k, sigma=2.0, t=ts)[:2])(x, key)
    assert eager.value.shape == (2,) and eager.stderr.shape == (2,)
    np.testing.assert_allclose(jitted[0], eager.value, rtol=1e-5)
    exact = np.asarray(jaxdse.dse(x, sigma=2.0, t=ts))
    assert np.all(np.abs(np.asarray(eager.value) - exact) <= 4 * np.asarray(eager.stderr) + 1e-3)


@pytest.mark.slow
def test_mask_matches_sliced_within_error(rng):
    x = gaussian(rng)
    mask = np.zeros(300, bool)
    mask[::2] = True
    exact = float(jaxdse.dse(x[mask], sigma=4.0))
    for operator in ("dense", "blockwise"):
        r = dse_slq(x, key=jax.random.key(0), sigma=4.0, mask=jnp.asarray(mask), operator=operator, block_size=64)
        assert abs(float(r.value) - exact) <= 4 * float(r.stderr) + 1e-3, operator


@pytest.mark.slow
def test_max_n_is_explicit_subsampling(rng):
    x = gaussian(rng, n=400)
    key = jax.random.key(5)
    r = dse_slq(x, key=key, sigma=4.0, max_n=250)
    assert r.n == 250
    # without max_n nothing is dropped
    assert dse_slq(x, key=key, sigma=4.0).n == 400
    sub = jaxdse.dse(x, sigma=4.0, max_n=250, key=key)
    full = jaxdse.dse(x, sigma=4.0)
    assert float(sub) < float(full)  # DSE grows with n: subsampling changes the answer
    with pytest.raises(ValueError, match="max_n needs key"):
        jaxdse.dse(x, sigma=4.0, max_n=250)


def test_gradient_raises_clear_error(rng):
    x = clustered(rng, n=60)
    with pytest.raises(NotImplementedError, match="method='slq'"):
        jax.grad(lambda x: jaxdse.dse(x, sigma=2.0, method="slq", key=jax.random.key(0)))(x)


def test_nonfinite_input_under_jit_gives_nan(rng):
    x = clustered(rng, n=60)
    x[3, 0] = np.nan
    value = jax.jit(lambda x: dse_slq(x, key=jax.random.key(0), sigma=2.0).value)(x)
    assert np.isnan(float(value))


def test_errors_name_the_argument(rng):
    x = clustered(rng, n=60)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="needs key"):
        jaxdse.dse(x, method="slq")
    with pytest.raises(TypeError, match="key"):
        dse_slq(x, key=0)
    with pytest.raises(ValueError, match="num_probes"):
        dse_slq(x, key=key, num_probes=1)
    with pytest.raises(ValueError, match="probes"):
        dse_slq(x, key=key, probes="sobol")
    with pytest.raises(ValueError, match="operator"):
        dse_slq(x, key=key, operator="sparse")
    with pytest.raises(ValueError, match="sigma='median'"):
        dse_slq(x, key=key, sigma="median", operator="blockwise")
    with pytest.raises(ValueError, match="num_probes is a setting of method='slq'"):
        jaxdse.dse(x, num_probes=8)
    with pytest.raises(ValueError, match="num_matvecs"):
        dse_slq(x, key=key, num_matvecs=100)


def test_gaussian_probes_and_no_deflation(rng):
    x = gaussian(rng)
    exact = float(jaxdse.dse(x, sigma=4.0))
    for kwargs in (dict(probes="gaussian"), dict(deflation_rank=0)):
        r = dse_slq(x, key=jax.random.key(2), sigma=4.0, **kwargs)
        assert abs(float(r.value) - exact) <= 4 * float(r.stderr) + 1e-3, kwargs


def test_auto_operator_follows_memory_budget(rng):
    x = gaussian(rng, n=200)
    assert dse_slq(x, key=jax.random.key(0), sigma=4.0).operator == "dense"
    old = jaxdse.get_memory_budget()
    jaxdse.set_memory_budget(10_000)
    try:
        r = dse_slq(x, key=jax.random.key(0), sigma=4.0)
        assert r.operator == "blockwise"
        with pytest.raises(MemoryError):
            dse_slq(x, key=jax.random.key(0), sigma=4.0, operator="dense")
    finally:
        jaxdse.set_memory_budget(None if old == 8 * 2**30 else old)

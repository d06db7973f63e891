"""The stochastic solver (SLQ) judged against the exact one, not only against its own error bar."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse import SLQ

KEYS = jax.random.split(jax.random.key(42), 20)
# Coverage of a calibrated error bar is a rate: with 20 keys a 2-stderr bar that
# covers 95% of them falls below 90% in about one case in ten; with 100, in one in a hundred.
COVERAGE_KEYS = jax.random.split(jax.random.key(42), 100)


def gaussian(rng, n=300, d=16):
    return rng.normal(size=(n, d)).astype(np.float32)


def clustered(rng, n=300, d=8, k=4):
    centres = rng.normal(scale=3.0, size=(k, d))
    return (centres[np.arange(n) % k] + rng.normal(size=(n, d))).astype(np.float32)


def cosine(a, b):
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def over_keys(x, solver=SLQ(), keys=KEYS, **kw):
    est = jax.vmap(lambda k: jaxdse.dse_estimate(x, solver=solver, key=k, **kw))(keys)
    return np.asarray(est.value), np.asarray(est.stderr)


@pytest.mark.parametrize(
    "data,sigma,max_error",
    # Absolute bounds on |estimate - exact| in bits for every one of 100 keys: the
    # estimator's documented accuracy (about 0.02 bits at these sizes).
    [("gaussian", 1.5, 0.003), ("gaussian", 4.0, 0.02), ("gaussian", 12.0, 0.003), ("clustered", 2.5, 0.025)],
)
def test_error_against_exact_and_calibrated_standard_error(rng, data, sigma, max_error):
    x = gaussian(rng) if data == "gaussian" else clustered(rng)
    exact = float(jaxdse.dse(x, sigma=sigma))
    value, stderr = over_keys(x, sigma=sigma, keys=COVERAGE_KEYS)
    error = value - exact
    assert np.abs(error).max() <= max_error, (np.abs(error).max(), exact)
    rms = np.sqrt(np.mean(error**2))
    # The reported error is honest (covers the truth for most keys) and not
    # inflated: bounded from above by a few times the error actually observed.
    assert np.mean(np.abs(error) <= 2 * stderr + 1e-5) >= 0.9
    assert np.mean(stderr) <= 4 * rms + 1e-5, (np.mean(stderr), rms)
    assert np.mean(stderr) >= 0.5 * np.std(value), (np.mean(stderr), np.std(value))


def test_value_and_gradient_near_low_entropy_match_exact(rng):
    # n = 800 in float32, DSE near 2 and near 0.8: a large mass of small
    # eigenvalues, which the quadrature must not lose to its breakdown guard
    # (that once moved the value by 0.07 bits and gave cosines of 0.2-0.4), nor
    # differentiate its nodes one by one (cosines 0.90-0.99 at sigma 12).
    x = jnp.asarray(np.random.default_rng(1).normal(size=(800, 32)).astype(np.float32))
    for sigma, min_cosine in [(12.0, 0.98), (20.0, 0.99)]:
        exact, g_exact = jax.value_and_grad(lambda x: jaxdse.dse(x, sigma=sigma))(x)
        value, g = jax.value_and_grad(lambda x: jaxdse.dse(x, sigma=sigma, solver=SLQ(), key=0))(x)
        assert abs(float(value) - float(exact)) <= 0.01, (sigma, float(value), float(exact))
        assert cosine(g, g_exact) >= min_cosine


def test_gradient_with_many_deflation_columns_at_a_spectral_gap():
    # At sigma 20 the top 33 eigenvalues (2e-3 to 3.5e-3) lie far above the rest
    # (about 2e-5). With probes holding none of the deflated directions, 32 or 64
    # columns gave cosines of 0.03 and 0.01 and gradients 33 and 80 times too
    # large, while the value stayed right (the probes' share of Q fixes it; 0.97
    # with 20 Lanczos steps, so 24 here).
    x = jnp.asarray(np.random.default_rng(1).normal(size=(800, 32)).astype(np.float32))
    g_exact = jax.grad(lambda x: jaxdse.dse(x, sigma=20.0))(x)
    g = jax.grad(lambda x: jaxdse.dse(x, sigma=20.0, solver=SLQ(deflation_rank=32, num_matvecs=24), key=1))(x)
    assert cosine(g, g_exact) >= 0.98
    assert 0.9 <= float(jnp.linalg.norm(g) / jnp.linalg.norm(g_exact)) <= 1.1


def test_standard_error_covers_the_quadrature_error_of_few_lanczos_steps():
    # With 4 Lanczos steps the quadrature error dominates; the standard error
    # must carry it (the Gauss/Gauss-Radau gap): without it |error| reached
    # 3.3 standard errors, with it at most 0.54.
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    f = jax.jit(lambda x, s, k: jaxdse.dse_estimate(x, sigma=s, solver=SLQ(num_matvecs=4), key=k))
    for sigma in (1.0, 4.0):
        exact = float(jaxdse.dse(x, sigma=sigma))
        for k in range(4):
            est = f(x, sigma, jax.random.key(k))
            assert abs(float(est.value) - exact) <= 2.0 * float(est.stderr), (sigma, k)


def test_gradient_near_dse_one_at_n_2000():
    # The breakdown guard's weight: eps^2 |u|^2. With eps |u|^2 (float32) the
    # value near DSE 1 stays within its error bar but the gradient's cosine
    # with the exact one falls from 0.991 to 0.969; at n = 800 the two agree.
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2000, 64)).astype(np.float32))
    g_exact = jax.grad(lambda x: jaxdse.dse(x, sigma=26.3))(x)
    g = jax.grad(lambda x: jaxdse.dse(x, sigma=26.3, solver=SLQ(), key=0))(x)
    assert cosine(g, g_exact) >= 0.98


def test_gradient_with_64_deflation_columns_at_n_2000():
    # 64 eigenvalues near 1e-3 (the linear modes of 64-dimensional Gaussian
    # data), the rest below 1e-5, much of it at float32's rounding level: with
    # derivatives through the Lanczos recurrence, cosines 0.82, 0.06, 0.88, 0.27
    # for keys 0-3 (0.9994 in float64); with the basis held fixed, 0.9994.
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2000, 64)).astype(np.float32))
    g_exact = jax.grad(lambda x: jaxdse.dse(x, sigma=26.3))(x)
    g = jax.grad(lambda x: jaxdse.dse(x, sigma=26.3, solver=SLQ(deflation_rank=64), key=1))(x)
    assert cosine(g, g_exact) >= 0.98


def test_gradient_of_a_smooth_kernel_on_few_points():
    # 100 digits, sigma 0.5 and 2 times the median distance: past the top
    # eigenvalues the spectrum is small (about 0.03), and a breakdown guard with
    # values outside it took over Lanczos after five steps; the value stayed
    # right while the gradient turned (cosines 0.06 to 0.98 over keys).
    x = jnp.asarray(jaxdse.data.load_digits()[0][:100])
    median = float(jnp.sqrt(jnp.median(jaxdse.pairwise_sq_distances(x))))
    exact = jax.jit(jax.grad(lambda x, s: jaxdse.dse(x, sigma=s)))
    slq = jax.jit(jax.grad(lambda x, s, k: jaxdse.dse(x, sigma=s, solver=SLQ(), key=k)))
    for sigma in (0.5 * median, 2.0 * median):
        g_exact = exact(x, sigma)
        for k in range(3):
            assert cosine(slq(x, sigma, jax.random.key(k)), g_exact) >= 0.98, (sigma, k)
    # 300 Gaussian points in 8 dimensions, DSE 1.5 and 0.5: the spectrum past the
    # top is far below 1, and guard values in (0, 1) rather than within it gave
    # cosines of 0.47 to 0.87 (0.98 to 0.999 with them inside it).
    x = jnp.asarray(np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32))
    for sigma in (6.0, 12.0):
        g_exact = exact(x, sigma)
        for k in range(2):
            assert cosine(slq(x, sigma, jax.random.key(k)), g_exact) >= 0.95, (sigma, k)


def test_float32_data_with_x64_enabled(rng, x64):
    # matfree's adjoint makes float64 constants when x64 is on; the float32
    # estimate and its gradient must still work (and agree with x64 off).
    x = gaussian(rng, n=120, d=4)
    value, g = jax.value_and_grad(lambda x: jaxdse.dse(x, sigma=2.0, solver=SLQ(), key=0))(jnp.asarray(x))
    assert value.dtype == jnp.float32 and g.dtype == jnp.float32 and np.all(np.isfinite(g))
    with jax.enable_x64(False):
        plain = jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(), key=0)
    # Both near the exact value (with x64 the probes may be drawn differently).
    exact = float(jaxdse.dse(x, sigma=2.0))
    assert abs(float(value) - exact) <= 2.5 * float(plain.stderr) + 1e-3, (float(value), exact)
    assert abs(float(plain.value) - exact) <= 2.5 * float(plain.stderr) + 1e-3, (float(plain.value), exact)


@pytest.mark.parametrize("sigma", [100.0, 1e-8, 1e8])
def test_ends_of_the_range_stay_in_bounds_and_near_exact(rng, sigma):
    # Near-constant kernel (DSE -> 0), exact identity (DSE = log2 n), exact constant.
    x = rng.normal(size=(300, 3)).astype(np.float32)
    exact = float(jaxdse.dse(x, sigma=sigma))
    value, stderr = over_keys(x, sigma=sigma)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(stderr))
    assert np.all(value >= -1e-6) and np.all(value <= np.log2(300) + 1e-5)
    assert np.mean(np.abs(value - exact) <= 2 * stderr + 1e-5) >= 0.9
    assert np.abs(value - exact).max() <= 5e-3


def test_duplicates_and_tiny_sets(rng):
    equal = np.ones((200, 3), np.float32)
    value, stderr = over_keys(equal)
    assert np.all(np.isfinite(value)) and np.abs(value).max() <= 2e-3
    # Two distinct points repeated: DSE of a two-cluster kernel.
    two = np.repeat(np.array([[0.0, 0.0], [50.0, 0.0]], np.float32), 50, axis=0)
    assert abs(float(jaxdse.dse(two, solver="slq", key=0)) - float(jaxdse.dse(two))) <= 2e-3
    small = rng.normal(size=(5, 2)).astype(np.float32)
    est = jaxdse.dse_estimate(small, sigma=1.0, solver=SLQ(num_matvecs=3, deflation_rank=0), key=1)
    assert abs(float(est.value) - float(jaxdse.dse(small, sigma=1.0))) <= 2 * float(est.stderr) + 1e-3


def test_a_mask_keeping_fewer_rows_than_the_deflation_rank(rng):
    # DSMI's small classes are masked subsets: with m kept rows and m - 1 <= k
    # the deflation covers every direction and the probes' space is empty. Its
    # dimension was taken as m - 1 - k < 0: 3 kept rows gave 0.0 bits and 10 gave
    # 2.19 against 2.34, each with a standard error of 1e-5.
    x = rng.normal(size=(100, 8)).astype(np.float32)
    f = jax.jit(lambda keep, k: jaxdse.dse_estimate(x, sigma=3.0, mask=keep, solver=SLQ(), key=k))
    for kept in (3, 10, 17, 30):
        keep = np.arange(100) < kept
        exact = float(jaxdse.dse(x[:kept], sigma=3.0))
        for k in range(2):
            value, stderr, _ = f(keep, jax.random.key(k))
            assert abs(float(value) - exact) <= 2e-3 and float(stderr) <= 2e-3, (kept, float(value), exact)


def test_dense_and_blockwise_operators_give_the_same_estimate(rng):
    x = clustered(rng)
    dense = jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(operator="dense"), key=3)
    blockwise = jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(operator="blockwise", block_size=64), key=3)
    np.testing.assert_allclose(blockwise.value, dense.value, atol=2e-5)
    np.testing.assert_allclose(blockwise.stderr, dense.stderr, rtol=1e-3)
    # A near-constant kernel (DSE 0.004): the deflated blocks are formed entry by
    # entry; as S V - v (v^T V) they lost A V to rounding and gave 0 +- 0.004.
    x = rng.normal(size=(300, 3)).astype(np.float32)
    exact = float(jaxdse.dse(x, sigma=100.0))
    dense = jaxdse.dse_estimate(x, sigma=100.0, solver=SLQ(operator="dense"), key=0)
    blockwise = jaxdse.dse_estimate(x, sigma=100.0, solver=SLQ(operator="blockwise", block_size=100), key=0)
    assert abs(float(blockwise.value) - float(dense.value)) <= 1e-6
    assert abs(float(blockwise.value) - exact) <= 1e-4 and float(blockwise.stderr) <= 1e-4, (
        float(blockwise.value),
        exact,
    )


def test_memory_budget_changes_how_not_what(rng):
    x = gaussian(rng, n=200)
    small = SLQ(memory_budget=10_000)  # dense does not fit: blockwise
    for sigma in (4.0, "sqrt_dim"):
        np.testing.assert_allclose(
            jaxdse.dse(x, sigma=sigma, solver=small, key=0), jaxdse.dse(x, sigma=sigma, solver=SLQ(), key=0), atol=2e-5
        )
    # A rule that needs every pairwise distance: a clear MemoryError, never another quantity.
    with pytest.raises(MemoryError, match="sigma='median'"):
        jaxdse.dse(x, sigma="median", solver=small, key=0)
    with pytest.raises(MemoryError):
        jaxdse.dse(x, solver=SLQ(operator="dense", memory_budget=10_000), key=0)


def test_jit_vmap_and_results_as_pytrees(rng):
    x = clustered(rng)
    est = jax.jit(lambda x, k: jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(), key=k))(x, jax.random.key(0))
    assert isinstance(est, jaxdse.Estimate)
    eager = jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(), key=jax.random.key(0))
    np.testing.assert_allclose(est.value, eager.value, rtol=1e-5)
    sigmas = jnp.array([1.5, 2.0, 3.0])
    swept = jax.vmap(lambda s: jaxdse.dse(x, sigma=s, solver="slq", key=0))(sigmas)
    assert swept.shape == (3,) and np.all(np.diff(np.asarray(swept)) < 0)
    ts = jnp.array([1.0, 2.0, -1.0])
    values = jax.jit(lambda x, ts: jaxdse.dse(x, sigma=2.0, t=ts, solver="slq", key=0))(x, ts)
    # An invalid entry of t marks only that entry.
    assert np.all(np.isfinite(values[:2])) and np.isnan(values[2])
    _, scanned = jax.lax.scan(lambda c, k: (c, jaxdse.dse_estimate(x, sigma=2.0, solver="slq", key=k)), 0, KEYS[:2])
    assert scanned.value.shape == (2,)


def test_gradients_follow_the_exact_gradient(rng):
    x = clustered(rng, n=200)
    exact = jax.grad(lambda z: jaxdse.dse(z, sigma=2.0))(x)
    for solver in (SLQ(), SLQ(operator="blockwise", block_size=64)):
        grad = jax.grad(lambda z: jaxdse.dse(z, sigma=2.0, solver=solver, key=5))(x)
        assert cosine(grad, exact) >= 0.95, (solver.operator, cosine(grad, exact))
    d_sigma = jax.grad(lambda s: jaxdse.dse(x, sigma=s, solver="slq", key=5))(2.0)
    assert float(d_sigma) == pytest.approx(float(jax.grad(lambda s: jaxdse.dse(x, sigma=s))(2.0)), rel=0.1)


def test_dsmi_with_the_stochastic_solver(rng):
    z = clustered(rng, n=240)
    y = np.arange(240) % 4
    solver = SLQ(deflation_rank=8)
    for key in range(3):
        # Same key, same subsets: the stochastic estimate agrees with the exact one.
        exact = jaxdse.dsmi_terms(z, y, sigma=2.0, key=key)
        terms = jaxdse.dsmi_terms(z, y, sigma=2.0, key=key, solver=solver)
        assert abs(float(terms.value) - float(exact.value)) <= 0.02
        assert float(terms.stderr) > 0 and float(exact.stderr) == 0.0
    assert jax.grad(lambda z: jaxdse.dsmi(z, y, sigma=2.0, key=0, solver="slq"))(z).shape == z.shape


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(solver="slq"), ValueError, "needs key="),
        (dict(solver=SLQ(), key="k"), TypeError, "key must be a jax.random key"),
        (dict(solver=SLQ(num_matvecs=500), key=0), ValueError, "num_matvecs"),
        (dict(solver="lanczos"), ValueError, "solver must be"),
        (dict(solver=3), TypeError, "solver must be"),
    ],
)
def test_bad_solver_arguments(rng, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        jaxdse.dse(gaussian(rng, n=40), **kwargs)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(num_probes=1), "num_probes"),
        (dict(num_matvecs=2), "num_matvecs"),
        (dict(probes="sobol"), "probes"),
        (dict(operator="sparse"), "operator"),
        (dict(mesh="gpu"), "mesh"),
        (dict(block_size=0), "block_size"),
        (dict(memory_budget=-1), "memory_budget"),
    ],
)
def test_solver_settings_are_checked_when_built(kwargs, word):
    with pytest.raises((TypeError, ValueError), match=word):
        SLQ(**kwargs)


def test_solvers_are_static_values():
    assert jax.tree_util.tree_leaves(SLQ()) == [] and jax.tree_util.tree_leaves(jaxdse.Exact()) == []
    assert hash(SLQ(num_probes=8)) == hash(SLQ(num_probes=8)) and SLQ() != SLQ(num_probes=8)
    with pytest.raises(ValueError, match="eigensolver"):
        jaxdse.Exact("qr")


def test_out_of_range_estimates_are_clipped_and_their_gradient_is_honest():
    from jaxdse.solvers.slq import _clip_keeping_gradient

    def f(x, untrusted):
        return _clip_keeping_gradient(3.0 * x, 2.0, untrusted)

    # Inside the range, or just outside it within the error bar: the clipped
    # value with the estimate's own slope (not the 0 of a plain clip).
    assert float(f(0.5, False)) == 1.5 and float(jax.grad(f)(0.5, False)) == 3.0
    assert float(f(-0.01, False)) == 0.0 and float(jax.grad(f)(-0.01, False)) == 3.0
    # Beyond the error bar: NaN, never a plausible slope.
    assert float(f(1.0, True)) == 2.0 and np.isnan(float(jax.grad(f)(1.0, True)))


def test_gradient_at_a_constant_kernel_is_finite(rng):
    # DSE sits at its lower end; the estimate is within its error bar of 0.
    x = jnp.asarray(rng.normal(size=(200, 3)).astype(np.float32))
    g = jax.grad(lambda x: jaxdse.dse(x, sigma=1e8, solver=SLQ(), key=0))(x)
    assert np.all(np.isfinite(np.asarray(g)))


def test_standard_error_carries_no_derivative(rng):
    # The estimate is differentiated through matfree's Lanczos adjoint; its
    # standard error is not: asking for its gradient gives NaN, not a number.
    x = jnp.asarray(rng.normal(size=(60, 3)).astype(np.float32))
    g = jax.grad(lambda x: jaxdse.dse_estimate(x, sigma=2.0, solver=SLQ(), key=0).stderr)(x)
    assert np.all(np.isnan(np.asarray(g)))

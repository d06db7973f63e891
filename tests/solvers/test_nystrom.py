"""The Nystrom solver and streaming: agreement with the exact solver, the error indicator, bad input."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse import LowRankWarning, Nystrom, dse, dse_estimate, dsmi_terms, stream_dse, stream_dsmi

N = 240


def _families():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 8.0
    blobs = (centres[rng.integers(0, 4, N)] + rng.normal(size=(N, 6))).astype(np.float32)
    gauss = rng.normal(size=(N, 6)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, N)
    circle = np.stack([np.cos(theta), np.sin(theta), 0.05 * rng.normal(size=N)], 1).astype(np.float32) * 3.0
    lowrank = (rng.normal(size=(N, 2)) @ rng.normal(size=(2, 10)) + 0.1 * rng.normal(size=(N, 10))).astype(np.float32)
    return {"blobs": blobs, "gaussian": gauss, "circle": circle, "lowrank": lowrank}


DATA = _families()


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowRankWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("sigma,alpha", [(0.7, 0.0), (1.0, 0.5)])
def test_all_rows_as_landmarks_equal_exact(sigma, alpha):
    # A well-conditioned landmark matrix (small bandwidth): F F^T = G to rounding.
    x = DATA["gaussian"]
    est = quiet(
        dse_estimate, x, sigma=sigma, alpha=alpha, t=jnp.array([1.0, 4.0]), solver=Nystrom(num_landmarks=N), key=0
    )
    exact = dse(x, sigma=sigma, alpha=alpha, t=jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(est.value, exact, atol=2e-4)


def test_blobs_few_landmarks_small_error():
    x = DATA["blobs"]
    # Four tight clusters at a large bandwidth and t = 8: a few eigenvalues carry the entropy.
    exact = float(dse(x, sigma=6.0, t=8.0))
    est = quiet(dse_estimate, x, sigma=6.0, t=8.0, solver=Nystrom(num_landmarks=48), key=0)
    assert abs(float(est.value) - exact) < 0.05
    assert abs(float(est.value) - exact) <= 2 * float(est.stderr)


def _smooth_blobs(n=1000, d=64):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, d)) * 4.0
    return (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("multiple", [4.0, 10.0])
def test_float32_matches_float64_with_many_landmarks(multiple):
    """A smooth kernel (DSE 0.06 and 0.3 bits), 512 landmarks: float32 within 0.002 bits of float64 on the same
    landmarks. A cutoff on W relative to its largest eigenvalue (about m here) dropped real directions, and a floor
    of sqrt(m) eps on the spectrum real eigenvalues: -0.027 bits at 4 x median, errors growing with m."""
    x = _smooth_blobs()
    sigma = multiple * float(jaxdse.kernels.resolved_sigma(x, "median"))
    solver = Nystrom(num_landmarks=512)
    single = quiet(dse_estimate, x, sigma=sigma, solver=solver, key=0)
    with jax.enable_x64(True):
        double = quiet(dse_estimate, x.astype(np.float64), sigma=sigma, solver=solver, key=0)
    assert abs(float(single.value) - float(double.value)) <= 0.002, (float(single.value), float(double.value))
    jitted = jax.jit(lambda x, s: dse_estimate(x, sigma=s, solver=solver, key=0).value)(x, sigma)
    np.testing.assert_allclose(float(jitted), float(single.value), atol=1e-5)
    fewer = quiet(dse_estimate, x, sigma=sigma, solver=Nystrom(num_landmarks=128), key=0)
    exact = float(dse(x, sigma=sigma))
    assert abs(float(single.value) - exact) <= abs(float(fewer.value) - exact) + 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name,sigma", [("blobs", 6.0), ("gaussian", 2.0), ("circle", 0.5), ("lowrank", 3.0)])
def test_indicator_covers_error(name, sigma):
    x = DATA[name]
    exact = float(dse(x, sigma=sigma))
    est = quiet(dse_estimate, x, sigma=sigma, solver=Nystrom(num_landmarks=64), key=1)
    assert abs(float(est.value) - exact) <= 2 * float(est.stderr)


@pytest.mark.parametrize("key", [1, 2])
def test_indicator_covers_isolated_points(key):
    # Heavy tails at 4 times the median distance: many points are alone, each an eigenvalue of S near 1 that
    # the factor leaves out. The kernel's missed trace (1 - |F|^2 / n) gave indicators of 0.20 and 0.50 bits
    # for errors of 0.39 and 1.19 here.
    x = np.random.default_rng(3).standard_t(df=1.5, size=(400, 32)).astype(np.float32)
    sigma = 4.0 * np.sqrt(2.0) * float(jaxdse.kernels.resolved_sigma(x, "median"))
    exact = float(dse(x, sigma=sigma))
    est = quiet(dse_estimate, x, sigma=sigma, solver=Nystrom(num_landmarks=100), key=key)
    assert abs(float(est.value) - exact) > 0.3  # far from exact: the case the indicator must flag
    assert abs(float(est.value) - exact) <= float(est.stderr)


def test_kmeanspp_and_fixed_landmarks():
    x = DATA["blobs"]
    exact = float(dse(x, sigma=2.0, t=2.0))
    est = quiet(dse_estimate, x, sigma=2.0, t=2.0, solver=Nystrom(num_landmarks=48, landmarks="kmeans++"), key=0)
    assert abs(float(est.value) - exact) <= 2 * float(est.stderr)
    # Duplicated landmarks: a rank-deficient W is handled by the pseudo-inverse, not NaN.
    fixed = np.concatenate([x[:20], x[:20]])
    value = quiet(dse, x, sigma=2.0, t=2.0, solver=Nystrom(landmarks=fixed))
    same = quiet(dse, x, sigma=2.0, t=2.0, solver=Nystrom(landmarks=x[:20]))
    assert np.isfinite(value) and abs(float(value) - float(same)) < 1e-3


def test_mask_equals_subset_with_same_landmarks():
    x = DATA["gaussian"]
    mask = np.arange(N) % 3 > 0
    solver = Nystrom(landmarks=x[mask][:50])
    a = quiet(dse, x, sigma=1.5, mask=mask, solver=solver)
    b = quiet(dse, x[mask], sigma=1.5, solver=solver)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_jit_vmap_grad():
    x = jnp.asarray(DATA["circle"])
    solver = Nystrom(num_landmarks=32, block_size=64)
    f = jax.jit(lambda x, s: dse(x, sigma=s, solver=solver, key=0))
    eager = quiet(dse, x, sigma=0.5, solver=solver, key=0)
    np.testing.assert_allclose(f(x, 0.5), eager, rtol=1e-5)
    sweep = jax.vmap(lambda s: dse(x, sigma=s, solver=solver, key=0))(jnp.array([0.5, 1.0, 2.0]))
    assert sweep.shape == (3,) and bool(jnp.all(jnp.diff(sweep) < 0))
    g = jax.grad(lambda x: dse(x, sigma=0.5, solver=solver, key=0))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


@pytest.mark.slow
def test_gradient_matches_finite_difference():
    # In float64, where a central difference of step 1e-4 is accurate.
    with jax.enable_x64(True):
        x = jnp.asarray(DATA["circle"], jnp.float64)
        solver = Nystrom(num_landmarks=32, block_size=64)
        f = jax.jit(lambda x: dse(x, sigma=0.5, solver=solver, key=0))
        g = jax.grad(f)(x)
        v = jnp.asarray(np.random.default_rng(1).normal(size=x.shape))
        h = 1e-4
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(g, v), fd, rtol=1e-3)


def test_dsmi_all_rows_matches_exact():
    x = DATA["blobs"]
    y = np.random.default_rng(2).integers(0, 3, N)
    y[: N // 2] = 0
    exact = dsmi_terms(x, y, sigma=1.5, estimator="plugin")
    approx = quiet(dsmi_terms, x, y, sigma=1.5, estimator="plugin", solver=Nystrom(num_landmarks=N), key=0)
    np.testing.assert_allclose(approx.value, exact.value, atol=1e-3)
    sub = quiet(jaxdse.dsmi, x, y, sigma=1.5, solver=Nystrom(num_landmarks=64), key=0)
    assert np.isfinite(sub)


@pytest.mark.slow
def test_streaming_equals_one_shot():
    x = DATA["lowrank"]
    y = np.random.default_rng(3).integers(0, 3, N)
    solver = Nystrom(num_landmarks=40, block_size=32)
    one = quiet(dse_estimate, x, sigma="median", alpha=0.5, solver=solver, key=4)
    streamed = quiet(stream_dse, lambda: iter(np.array_split(x, 5)), sigma="median", alpha=0.5, solver=solver, key=4)
    np.testing.assert_allclose(streamed.value, one.value, atol=1e-4)
    np.testing.assert_allclose(streamed.stderr, one.stderr, atol=1e-4)
    one = quiet(dsmi_terms, x, y, sigma=1.0, solver=solver, key=4, estimator="plugin")
    pairs = lambda: zip(np.array_split(x, 3), np.array_split(y, 3))  # noqa: E731
    streamed = quiet(stream_dsmi, pairs, sigma=1.0, solver=solver, key=4)
    np.testing.assert_allclose(streamed.value, one.value, atol=1e-4)


def test_stream_dsmi_compiles_nothing_per_class_subset():
    """Class subsets of a batch have new lengths almost every time; routed through
    eager JAX ops, each new length compiled (and kept) a program: at n = 1,000,000
    with 10 classes those held more memory than the sums (peak RSS 3.7 GiB)."""
    x = DATA["lowrank"]
    solver = Nystrom(num_landmarks=40, block_size=32)

    def labels(seed):
        return np.random.default_rng(seed).integers(0, 6, N)

    def run(y):
        return quiet(
            stream_dsmi, lambda: zip(np.array_split(x, 4), np.array_split(y, 4)), sigma=1.0, solver=solver, key=4
        )

    run(labels(0))  # compiles the steps for these batch and block shapes
    compiles = []

    def listen(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        run(labels(1))  # the same batches, other class subsets
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert not compiles, f"{len(compiles)} programs compiled for new class-subset lengths"


def test_mesh_of_one_device_and_bad_mesh():
    """Nystrom(mesh=...) shards its passes (8 devices: tests/solvers/test_sharding.py); on one device it is the same."""
    x = DATA["lowrank"]
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    solver = Nystrom(num_landmarks=40, block_size=32)
    one = quiet(dse_estimate, x, sigma=1.0, alpha=0.5, solver=solver, key=4)
    meshed = quiet(
        dse_estimate, x, sigma=1.0, alpha=0.5, solver=Nystrom(num_landmarks=40, block_size=32, mesh=mesh), key=4
    )
    np.testing.assert_allclose(meshed.value, one.value, rtol=1e-6)
    with pytest.raises((TypeError, ValueError), match="mesh"):
        Nystrom(mesh="data")
    with pytest.raises(ValueError, match="one device"):
        stream_dse(lambda: iter([x]), solver=Nystrom(num_landmarks=8, mesh=mesh), key=0)


def test_warning_eager_not_under_jit():
    x = DATA["gaussian"]
    with pytest.warns(LowRankWarning, match="num_landmarks"):
        dse(x, sigma=1.0, solver=Nystrom(num_landmarks=8), key=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowRankWarning)
        jax.jit(lambda x: dse(x, sigma=1.0, solver=Nystrom(num_landmarks=8), key=0))(x)


def test_bad_input():
    x = DATA["gaussian"]
    with pytest.raises(ValueError, match="num_landmarks"):
        Nystrom(num_landmarks=1)
    with pytest.raises(ValueError, match="num_landmarks"):
        dse(x, solver=Nystrom(num_landmarks=N + 1), key=0)
    with pytest.raises(ValueError, match="landmarks"):
        dse(x, solver=Nystrom(landmarks=np.zeros((10, 3))))
    with pytest.raises(ValueError, match="knn"):
        dse(x, sigma="knn", solver=Nystrom(num_landmarks=10), key=0)
    with pytest.raises(ValueError, match="key"):
        dse(x, solver=Nystrom(num_landmarks=10))
    with pytest.raises(ValueError, match="landmarks"):
        Nystrom(landmarks="random")
    with pytest.raises(ValueError, match="widths"):
        stream_dse(lambda: iter([x[:10], x[10:20, :3]]), solver=Nystrom(num_landmarks=5), key=0)
    with pytest.raises(ValueError, match="no rows"):
        stream_dse(lambda: iter([]), key=0)
    with pytest.raises(TypeError, match="callable"):
        stream_dse(iter([x]), key=0)
    calls = []

    def shrinking():
        calls.append(1)
        return iter([x] if len(calls) == 1 else [x[:-1]])

    with pytest.raises(ValueError, match="later pass"):
        stream_dse(shrinking, solver=Nystrom(num_landmarks=5), key=0)
    with pytest.raises(ValueError, match="num_landmarks"):
        stream_dse(lambda: iter([x[:10]]), solver=Nystrom(num_landmarks=20), key=0)
    with pytest.raises(ValueError, match="landmarks"):
        stream_dse(lambda: iter([x]), solver=Nystrom(landmarks=np.zeros((10, 3))))

"""DSE: properties, transformations and errors (the reference comparison is in test_reference.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxdse
from jaxdse import diffusion_eigenvalues, dse
from jaxdse.kernels.points import sq_distances
from tests.conftest import blobs, slow_tier_settings


def test_bounds_and_limits(rng):
    x = rng.normal(size=(40, 3))
    for sigma in (0.05, 0.5, 1.0, 5.0, 1e4):
        h = float(dse(x, sigma=sigma))
        assert -1e-6 <= h <= np.log2(40) + 1e-5
    # Points far apart relative to sigma: G = I, DSE = log2 n.
    assert float(dse(x, sigma=1e-3)) == pytest.approx(np.log2(40), abs=1e-4)
    # Collapsed kernel: DSE -> 0.
    assert float(dse(x, sigma=1e6)) < 1e-3


def test_clusters_give_log_k_at_large_t(rng):
    x, _ = blobs(rng, n=90, d=4, k=3, sep=50.0)
    assert float(dse(x, sigma=2.0, t=50.0)) == pytest.approx(np.log2(3), abs=0.02)


def test_eigenvalues_properties(rng, x64):
    x = rng.normal(size=(30, 4))
    lam = np.asarray(diffusion_eigenvalues(x, sigma=1.5))
    assert lam.shape == (30,)
    assert np.all(np.diff(lam) >= 0)
    assert lam[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(lam >= -1 - 1e-12)
    # Same spectrum as the row-stochastic P = D^-1 K computed directly.
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    G = np.exp(-d2 / (2 * 1.5**2))
    P = G / G.sum(1, keepdims=True)
    ev = np.sort(np.linalg.eigvals(P).real)
    np.testing.assert_allclose(lam, ev, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_anisotropic_operator(rng, x64, alpha):
    x = rng.normal(size=(25, 3))
    lam = np.asarray(diffusion_eigenvalues(x, sigma=1.0, alpha=alpha))
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    G = np.exp(-d2 / 2)
    q = G.sum(1)
    K = G / np.outer(q**alpha, q**alpha)
    P = K / K.sum(1, keepdims=True)
    np.testing.assert_allclose(lam, np.sort(np.linalg.eigvals(P).real), atol=1e-10)


def test_methods_agree(rng, x64):
    x = rng.normal(size=(50, 6))
    a = diffusion_eigenvalues(x, sigma=2.0, solver=jaxdse.Exact("eigh"))
    b = diffusion_eigenvalues(x, sigma=2.0, solver=jaxdse.Exact("tridiagonal"))
    c = diffusion_eigenvalues(x, sigma=2.0)
    np.testing.assert_allclose(a, b, atol=1e-10)
    np.testing.assert_allclose(a, c, atol=1e-10)


def test_invariances(rng, x64):
    x = rng.normal(size=(35, 4))
    h = float(dse(x, sigma=1.3, t=2.0))
    perm = rng.permutation(35)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert float(dse(x[perm], sigma=1.3, t=2.0)) == pytest.approx(h, abs=1e-10)
    assert float(dse(x + 1e3, sigma=1.3, t=2.0)) == pytest.approx(h, abs=1e-8)
    assert float(dse(x @ q, sigma=1.3, t=2.0)) == pytest.approx(h, abs=1e-10)
    assert float(dse(7.0 * x, sigma=7.0 * 1.3, t=2.0)) == pytest.approx(h, abs=1e-10)


def test_translation_float32_far_from_origin(rng):
    x = rng.normal(size=(35, 4)).astype(np.float32)
    h = float(dse(x, sigma=1.3))
    assert float(dse(x + np.float32(1e4), sigma=1.3)) == pytest.approx(h, abs=1e-3)


def test_float32_agrees_with_float64(rng):
    x = rng.normal(size=(200, 16))
    values32 = [float(dse(x.astype(np.float32), sigma=s)) for s in (2.0, 5.0, 50.0)]
    with jax.enable_x64(True):
        values64 = [float(dse(x, sigma=s)) for s in (2.0, 5.0, 50.0)]
        assert dse(x, sigma=2.0).dtype == jnp.float64
    assert dse(x.astype(np.float32)).dtype == jnp.float32
    np.testing.assert_allclose(values32, values64, atol=2e-4)


def test_integer_input_is_converted(rng):
    x = rng.integers(0, 16, size=(30, 8))
    assert float(dse(x, sigma=10.0)) == pytest.approx(float(dse(x.astype(np.float32), sigma=10.0)), abs=1e-6)


def test_mask_equals_slice(rng, x64):
    x = rng.normal(size=(40, 5))
    mask = rng.random(40) < 0.6
    for kwargs in (dict(sigma=1.5), dict(sigma=1.5, alpha=0.7, t=3.0), dict(sigma="median"), dict(sigma="knn:5")):
        sliced = float(dse(x[mask], **kwargs))
        assert float(dse(x, mask=jnp.asarray(mask), **kwargs)) == pytest.approx(sliced, abs=1e-10)
    lam = np.asarray(diffusion_eigenvalues(x, sigma=1.5, mask=jnp.asarray(mask)))
    kept = np.asarray(diffusion_eigenvalues(x[mask], sigma=1.5))
    assert np.sum(lam == 0.0) >= 40 - mask.sum()
    np.testing.assert_allclose(np.sort(lam[lam != 0]), np.sort(kept[kept != 0]), atol=1e-10)


def test_mask_float32(rng):
    x = rng.normal(size=(64, 5)).astype(np.float32)
    mask = np.arange(64) < 41
    assert float(dse(x, sigma=1.5, mask=mask)) == pytest.approx(float(dse(x[:41], sigma=1.5)), abs=1e-4)


def test_jit_equals_eager_and_vmap(rng):
    x = rng.normal(size=(3, 30, 4)).astype(np.float32)
    eager = np.array([float(dse(xi, sigma=1.2, t=2.0)) for xi in x])
    jitted = jax.jit(lambda xi: dse(xi, sigma=1.2, t=2.0))
    np.testing.assert_allclose([float(jitted(xi)) for xi in x], eager, atol=1e-5)
    batched = jax.jit(jax.vmap(lambda xi: dse(xi, sigma=1.2, t=2.0)))(x)
    np.testing.assert_allclose(batched, eager, atol=1e-5)
    sigmas = jnp.array([0.5, 1.2, 3.0])
    over_sigma = jax.vmap(lambda s: dse(x[0], sigma=s))(sigmas)
    np.testing.assert_allclose(over_sigma, [float(dse(x[0], sigma=float(s))) for s in sigmas], atol=1e-5)
    ts = jnp.array([1.0, 2.0, 5.0])
    np.testing.assert_allclose(dse(x[0], sigma=1.2, t=ts), jax.vmap(lambda t: dse(x[0], sigma=1.2, t=t))(ts), atol=1e-5)


def test_no_retrace_across_sigma_and_t_sweep(rng):
    traces = []

    def f(x, sigma, t):
        traces.append(1)
        return dse(x, sigma=sigma, t=t)

    jf = jax.jit(f)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    values = [float(jf(x, s, t)) for s in (0.5, 1.0, 2.0, 4.0) for t in (1.0, 3.0)]
    assert len(traces) == 1
    assert len(set(np.round(values, 6))) == 8


def test_string_bandwidths(rng):
    x = rng.normal(size=(50, 9)).astype(np.float32)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)[np.triu_indices(50, 1)]
    median_sigma = float(np.sqrt(np.median(d2) / 2))
    assert float(dse(x, sigma="median")) == pytest.approx(float(dse(x, sigma=median_sigma)), abs=1e-4)
    assert float(dse(x, sigma="sqrt_dim")) == pytest.approx(float(dse(x, sigma=3.0)), abs=1e-5)
    h_knn = float(dse(x, sigma="knn"))
    assert h_knn == pytest.approx(float(dse(x, sigma=("knn", 7))), abs=1e-6)
    assert 0 < h_knn < np.log2(50)
    # The adaptive bandwidth scales with the data.
    assert float(dse(10 * x, sigma="knn:4")) == pytest.approx(float(dse(x, sigma="knn:4")), abs=1e-4)


def test_knn_bandwidth_matches_numpy(rng, x64):
    x = rng.normal(size=(30, 3))
    k = 4
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    s = np.sqrt(np.sort(d2, axis=1)[:, k])  # column 0 is the point itself
    G = np.exp(-d2 / (2 * np.outer(s, s)))
    P = G / G.sum(1, keepdims=True)
    ev = np.abs(np.linalg.eigvals(P).real)
    p = ev / ev.sum()
    expected = -(p * np.log2(p)).sum()
    assert float(dse(x, sigma=f"knn:{k}")) == pytest.approx(expected, abs=1e-9)


def _fd_check(f, x, eps=1e-6, n_dirs=4, seed=0):
    g = np.asarray(jax.grad(f)(x))
    assert np.all(np.isfinite(g))
    r = np.random.default_rng(seed)
    for _ in range(n_dirs):
        u = r.normal(size=x.shape)
        fd = (float(f(x + eps * u)) - float(f(x - eps * u))) / (2 * eps)
        assert float(np.sum(g * u)) == pytest.approx(fd, rel=1e-5, abs=1e-7)
    return g


def test_grad_matches_finite_differences(rng, x64):
    x = rng.normal(size=(20, 3))
    for kwargs in (dict(sigma=1.0), dict(sigma=1.0, t=2.5, alpha=0.5), dict(sigma=2.0, t=0.7)):
        _fd_check(lambda z: dse(z, **kwargs), x)
    _fd_check(lambda z: dse(z, sigma=1.0, solver="eigh"), x)


def test_grad_with_repeated_eigenvalues(x64):
    # Vertices of a regular polygon and a cube: symmetric point sets whose
    # diffusion spectra have repeated eigenvalues.
    angles = 2 * np.pi * np.arange(8) / 8
    polygon = np.stack([np.cos(angles), np.sin(angles)], 1)
    cube = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    for x in (polygon, cube):
        lam = np.asarray(diffusion_eigenvalues(x, sigma=0.8))
        assert np.min(np.diff(lam)) < 1e-10  # really repeated
        _fd_check(lambda z: dse(z, sigma=0.8, t=1.5), x)


def test_grad_with_zero_weights(rng, x64):
    # Masked rows give exact-zero eigenvalues (zero weights): finite gradient,
    # zero for the masked rows, and equal to the gradient on the kept rows.
    x = rng.normal(size=(12, 3))
    mask = np.arange(12) < 9
    g = _fd_check(lambda z: dse(z, sigma=1.0, mask=jnp.asarray(mask)), x)
    assert np.all(g[~mask] == 0)
    g_kept = np.asarray(jax.grad(lambda z: dse(z, sigma=1.0))(x[mask]))
    np.testing.assert_allclose(g[mask], g_kept, atol=1e-9)


def test_grad_float32_finite_under_jit(rng):
    x = rng.normal(size=(64, 8)).astype(np.float32)
    g = jax.jit(jax.grad(lambda z: dse(z, sigma=2.0)))(x)
    assert np.all(np.isfinite(np.asarray(g)))
    g_sigma = jax.grad(lambda s: dse(x, sigma=s))(2.0)
    assert np.isfinite(float(g_sigma)) and float(g_sigma) < 0  # wider kernel, lower entropy


BOUNDS_DRAWN = dict(
    n=st.sampled_from([2, 7, 12]),
    d=st.sampled_from([1, 4]),
    log_sigma=st.floats(-2, 3),
    t=st.floats(0.2, 6),
    seed=st.integers(0, 10**6),
)


def check_bounds(n, d, log_sigma, t, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    h = float(dse(x, sigma=10.0**log_sigma, t=t))
    assert -1e-5 <= h <= np.log2(n) + 1e-4


@given(**BOUNDS_DRAWN)
def test_property_bounds(n, d, log_sigma, t, seed):
    check_bounds(n, d, log_sigma, t, seed)


@pytest.mark.slow
@slow_tier_settings()
@given(**BOUNDS_DRAWN)
def test_property_bounds_more_examples(n, d, log_sigma, t, seed):
    check_bounds(n, d, log_sigma, t, seed)


def test_two_points():
    h = float(dse(np.array([[0.0], [1.0]]), sigma=1.0))
    g = np.exp(-0.5)
    lam = np.array([1.0, (1 - g) / (1 + g)])
    p = lam / lam.sum()
    assert h == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-5)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "x, kwargs, exc, word",
    [
        (np.zeros(5), {}, ValueError, r"x must have shape \[n, d\]"),
        (np.zeros((1, 3)), {}, ValueError, "at least 2 rows"),
        (np.zeros((5, 0)), {}, ValueError, "d=0"),
        (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, "x must have a real numeric dtype"),
        (np.ones((3, 2), bool), {}, TypeError, "x must have a real numeric dtype"),
        (np.ones((3, 2), complex), {}, TypeError, "x must have a real numeric dtype"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), {}, ValueError, "x has 1 row.s. with non-finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), {}, ValueError, "x has 1 row.s. with non-finite"),
        ("hello", {}, TypeError, "x must be a numeric array"),
        (np.ones((4, 2)), dict(sigma=0.0), ValueError, "sigma must be positive"),
        (np.ones((4, 2)), dict(sigma=-1.0), ValueError, "sigma must be positive"),
        (np.ones((4, 2)), dict(sigma="wide"), ValueError, "sigma must be a positive number or one of"),
        (np.ones((4, 2)), dict(sigma="knn:x"), ValueError, "sigma"),
        (np.ones((4, 2)), dict(sigma="knn:0"), ValueError, "sigma"),
        (np.ones((4, 2)), dict(sigma="knn:9"), ValueError, "k <= n - 1"),
        (np.ones((4, 2)), dict(t=0.0), ValueError, "t must be positive"),
        (np.ones((4, 2)), dict(t=-2.0), ValueError, "t must be positive"),
        (np.ones((4, 2)), dict(alpha=1.5), ValueError, r"alpha must lie in \[0, 1\]"),
        (np.ones((4, 2)), dict(alpha=-0.1), ValueError, r"alpha must lie in \[0, 1\]"),
        (np.ones((4, 2)), dict(base=1.0), ValueError, "base must be positive, finite and not 1"),
        (np.ones((4, 2)), dict(base=-2.0), ValueError, "base must be positive, finite and not 1"),
        (np.ones((4, 2)), dict(mask=np.ones(3, bool)), ValueError, r"mask must have shape \[n\]"),
        (np.ones((4, 2)), dict(mask=np.ones(4)), TypeError, "mask must be a boolean"),
        (np.ones((4, 2)), dict(mask=np.array([1, 0, 0, 0], bool)), ValueError, "mask must keep at least 2"),
        (np.ones((4, 2)), dict(solver="lapack"), ValueError, "solver must be"),
    ],
)
def test_bad_input(x, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        dse(x, **kwargs)


@pytest.mark.parametrize(
    "sigma, exc",
    [
        (("median",), TypeError),
        (["median"], TypeError),
        (np.array(["median"]), TypeError),
        (np.array("median"), TypeError),
        (b"median", TypeError),
        (None, TypeError),
        ([2.0], TypeError),
        (("knn",), TypeError),
        (["knn", 3], TypeError),
        (("knn", 3, 1), TypeError),
        (1 + 2j, TypeError),
        (np.array([2.0]), ValueError),
    ],
)
def test_odd_sigma_forms_name_sigma_and_what_it_takes(sigma, exc):
    x = np.arange(8.0).reshape(4, 2)
    for call in (lambda: dse(x, sigma=sigma), lambda: jaxdse.dsmi(x, np.arange(4) % 2, sigma=sigma, key=0)):
        with pytest.raises(exc, match=r"sigma must be a positive number or one of 'median', .*\('knn', K\)"):
            call()


def test_sigma_forms_that_are_taken():
    x = np.random.default_rng(0).normal(size=(12, 2))
    assert float(dse(x, sigma=np.str_("median"))) == float(dse(x, sigma="median"))
    assert float(dse(x, sigma=("knn", 3))) == float(dse(x, sigma="knn:3"))
    assert float(dse(x, sigma=np.array(2.0))) == pytest.approx(float(dse(x, sigma=2.0)), abs=1e-6)
    assert float(jax.jit(lambda s: dse(x, sigma=s))(2.0)) == pytest.approx(float(dse(x, sigma=2.0)), abs=1e-6)


def test_non_finite_under_jit_gives_nan():
    f = jax.jit(lambda x: dse(x, sigma=1.0))
    x = np.ones((5, 2), np.float32) * np.arange(5, dtype=np.float32)[:, None]
    assert np.isfinite(float(f(x)))
    x[1, 0] = np.nan
    assert np.isnan(float(f(x)))
    x[1, 0] = np.inf
    assert np.isnan(float(f(x)))
    assert np.all(np.isnan(np.asarray(jax.jit(lambda z: diffusion_eigenvalues(z))(x))))


def test_non_finite_rows_give_nan_distances():
    # The rounding-level zeroing of distances must not turn a NaN into 0.
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    x[2, 1] = np.nan
    d2 = np.asarray(jax.jit(lambda z: sq_distances(z, z))(x))
    assert np.all(np.isnan(d2[2, [0, 1, 3]])) and np.all(np.isnan(d2[[0, 1, 3], 2]))
    assert np.isfinite(d2[0, 1]) and d2[0, 1] > 0


def test_invalid_traced_settings_give_nan(rng):
    x = rng.normal(size=(10, 2)).astype(np.float32)
    f = jax.jit(lambda s, t, a: dse(x, sigma=s, t=t, alpha=a))
    assert np.isfinite(float(f(1.0, 1.0, 0.0)))
    assert np.isnan(float(f(-1.0, 1.0, 0.0)))
    assert np.isnan(float(f(1.0, 0.0, 0.0)))
    assert np.isnan(float(f(1.0, 1.0, 2.0)))


def test_memory_budget_fails_fast():
    jaxdse.set_memory_budget(10 * 2**20)
    try:
        with pytest.raises(MemoryError, match=r"n=2000 needs about .* GiB.*memory budget"):
            dse(np.zeros((2000, 3), np.float32))
        # Shapes alone decide: the check also runs under jit, before any work.
        with pytest.raises(MemoryError, match="set_memory_budget"):
            jax.jit(lambda x: dse(x)).lower(jax.ShapeDtypeStruct((2000, 3), jnp.float32))
    finally:
        jaxdse.set_memory_budget(None)
    assert jaxdse.get_memory_budget() == 8 * 2**30


def test_memory_budget_from_environment(monkeypatch):
    monkeypatch.setenv("JAXDSE_MEMORY_BUDGET", "2G")
    assert jaxdse.get_memory_budget() == 2 * 2**30
    monkeypatch.setenv("JAXDSE_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="JAXDSE_MEMORY_BUDGET"):
        jaxdse.get_memory_budget()
    with pytest.raises(ValueError, match="num_bytes"):
        jaxdse.set_memory_budget(-5)


def test_vmap_over_masks_and_jit_of_closed_over_data(rng):
    x = rng.normal(size=(20, 3)).astype(np.float32)
    masks = np.stack([np.arange(20) < k for k in (5, 12, 20)])
    batched = jax.vmap(lambda m: dse(x, sigma=1.0, mask=m))(masks)
    np.testing.assert_allclose(batched, [float(dse(x[m], sigma=1.0)) for m in masks], atol=1e-5)
    # x closed over by a jitted function is a constant: still checked, still works.
    assert float(jax.jit(lambda: dse(x, sigma=1.0))()) == pytest.approx(float(dse(x, sigma=1.0)), abs=1e-6)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 row.s. with non-finite"):
        jax.jit(lambda: dse(bad, sigma=1.0))()

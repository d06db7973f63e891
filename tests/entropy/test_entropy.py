import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdse import spectral_entropy


def reference_entropy(lam, t, base=2.0):
    w = np.abs(np.asarray(lam, np.float64)) ** t
    p = w / w.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(base))


def test_matches_direct_formula(rng, x64):
    lam = rng.uniform(-1, 1, size=50)
    for t in (0.5, 1.0, 2.0, 3.7):
        assert abs(float(spectral_entropy(lam, t=t)) - reference_entropy(lam, t)) < 1e-12
    assert abs(float(spectral_entropy(lam, base=np.e)) - reference_entropy(lam, 1.0, np.e)) < 1e-12


def test_uniform_and_single_spectra():
    assert float(spectral_entropy(jnp.ones(8))) == pytest.approx(3.0, abs=1e-6)
    assert float(spectral_entropy(jnp.array([1.0, 0.0, 0.0]))) == 0.0


def test_t_array_gives_one_entropy_per_t(rng):
    lam = jnp.asarray(rng.uniform(-1, 1, size=30), jnp.float32)
    ts = jnp.array([0.5, 1.0, 2.0, 4.0])
    many = spectral_entropy(lam, t=ts)
    assert many.shape == (4,)
    for i, t in enumerate(ts):
        assert float(many[i]) == pytest.approx(float(spectral_entropy(lam, t=float(t))), abs=1e-5)
    # Larger t concentrates the distribution: entropy decreases.
    assert np.all(np.diff(np.asarray(many)) < 0)
    batch = spectral_entropy(jnp.stack([lam, lam * 0.5]), t=ts)
    assert batch.shape == (4, 2)


def test_large_t_does_not_underflow():
    lam = jnp.array([1.0, 0.5, 0.25, 1e-3])
    h = spectral_entropy(lam, t=200.0)
    assert np.isfinite(float(h)) and float(h) >= 0
    # Tiny spectra (all small) still normalise correctly.
    assert float(spectral_entropy(jnp.array([1e-30, 1e-30]))) == pytest.approx(1.0, abs=1e-5)


def test_subnormal_eigenvalues_count():
    # XLA on CPU flushes subnormals to zero in arithmetic; the value must not depend on it.
    for lam in (jnp.full(4, 1e-45, jnp.float32), jnp.full(7, -3e-41, jnp.float32)):
        n = lam.shape[0]
        assert float(spectral_entropy(lam)) == pytest.approx(np.log2(n), abs=1e-5)
        assert float(jax.jit(spectral_entropy)(lam)) == pytest.approx(np.log2(n), abs=1e-5)
        assert float(spectral_entropy(lam, t=300.0)) == pytest.approx(np.log2(n), abs=1e-5)
    assert float(spectral_entropy(jnp.array([1e-45, 1e-45, 0.0, 0.0], jnp.float32))) == pytest.approx(1.0, abs=1e-5)
    mixed = jnp.array([2e-38, 5e-39, 0.0], jnp.float32)  # a normal value and a subnormal one
    assert float(spectral_entropy(mixed)) == pytest.approx(reference_entropy([2e-38, 5e-39], 1.0), abs=1e-5)
    assert float(spectral_entropy(mixed, t=2.0)) == pytest.approx(reference_entropy([2e-38, 5e-39], 2.0), abs=1e-5)
    beside_one = jnp.array([1.0, 0.5, 1e-40, 0.0], jnp.float32)
    assert float(spectral_entropy(beside_one)) == pytest.approx(float(spectral_entropy(beside_one[:2])), abs=1e-6)
    for lam in (jnp.full(4, 1e-45, jnp.float32), mixed, beside_one):
        g = np.asarray(jax.grad(spectral_entropy)(lam))
        assert np.all(np.isfinite(g)) and g[-1] == 0.0
        assert np.isfinite(float(jax.grad(lambda t: spectral_entropy(lam, t=t))(2.0)))
    g = np.asarray(jax.grad(spectral_entropy)(beside_one))
    assert g[:2] == pytest.approx(np.asarray(jax.grad(spectral_entropy)(beside_one[:2])), rel=1e-5)


def test_subnormal_eigenvalues_count_in_float64(x64):
    assert float(spectral_entropy(jnp.full(5, 5e-324))) == pytest.approx(np.log2(5), abs=1e-12)
    assert float(spectral_entropy(jnp.array([4e-308, 1e-308, 0.0]))) == pytest.approx(
        reference_entropy([0.8, 0.2], 1.0), abs=1e-12
    )


def test_zero_eigenvalues_get_zero_gradient_and_no_effect(x64):
    lam = jnp.array([1.0, 0.6, -0.3, 0.0, 0.0])
    g = jax.grad(lambda w: spectral_entropy(w, t=1.0))(lam)
    assert np.all(np.isfinite(np.asarray(g)))
    assert float(g[3]) == 0.0 and float(g[4]) == 0.0
    assert float(spectral_entropy(lam)) == pytest.approx(float(spectral_entropy(lam[:3])), abs=1e-14)
    # Gradient matches central finite differences on the nonzero part.
    eps = 1e-6
    for i in range(3):
        e = jnp.zeros(5).at[i].set(eps)
        fd = (spectral_entropy(lam + e) - spectral_entropy(lam - e)) / (2 * eps)
        assert float(g[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


def test_gradient_in_t_is_finite():
    g = jax.grad(lambda t: spectral_entropy(jnp.array([1.0, 0.5, 0.0]), t=t))(1.5)
    assert np.isfinite(float(g)) and float(g) < 0


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(t=0.0), ValueError, "t"),
        (dict(t=-1.0), ValueError, "t"),
        (dict(base=1.0), ValueError, "base"),
        (dict(base=0.0), ValueError, "base"),
        (dict(t="1"), TypeError, "t"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        spectral_entropy(jnp.ones(3), **kwargs)


def test_bad_eigenvalues():
    with pytest.raises(ValueError, match="eigenvalues"):
        spectral_entropy(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="eigenvalues"):
        spectral_entropy(jnp.zeros((3, 0)))
    with pytest.raises(TypeError, match="eigenvalues"):
        spectral_entropy("abc")


def test_traced_invalid_t_gives_nan():
    f = jax.jit(lambda t: spectral_entropy(jnp.array([1.0, 0.5]), t=t))
    assert np.isnan(float(f(-1.0)))
    assert np.isfinite(float(f(1.0)))

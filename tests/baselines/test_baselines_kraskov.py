import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdse.baselines import ksg

scipy_spatial = pytest.importorskip("scipy.spatial")
from scipy.special import digamma  # noqa: E402

TRUE_BITS = -0.5 * np.log2(1 - 0.8**2)  # per correlated pair, 0.737 bits


def kdtree_ksg_bits(x, y, k=3):
    """Independent KSG estimator 1 on scipy's KD-tree (max-norm), NPEET-style."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    joint = np.hstack([x, y])
    eps = scipy_spatial.cKDTree(joint).query(joint, k + 1, p=np.inf)[0][:, k]
    radius = np.nextafter(eps, 0)  # strictly inside eps; counts include the point itself
    n_x = scipy_spatial.cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True)
    n_y = scipy_spatial.cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True)
    return (digamma(k) + digamma(len(x)) - np.mean(digamma(n_x) + digamma(n_y))) / np.log(2)


def correlated_gaussians(rng, n, pairs):
    x = rng.normal(size=(n, pairs))
    return x, 0.8 * x + 0.6 * rng.normal(size=(n, pairs))


def test_bivariate_gaussian_accuracy(rng):
    # One n = 2000 sample scatters by about 0.04 bits (5%) around the truth, so
    # the bias is checked on the mean of four independent samples.
    values = []
    for _ in range(4):
        x, y = correlated_gaussians(rng, 2000, 1)
        values.append(float(ksg(x[:, 0], y[:, 0])))  # 1-D inputs are accepted
    assert abs(np.mean(values) - TRUE_BITS) < 0.05 * TRUE_BITS


def test_ten_dimensional_case_matches_kdtree(rng):
    x, y = correlated_gaussians(rng, 2000, 5)
    got = float(ksg(x, y))
    expected = kdtree_ksg_bits(x, y)
    assert abs(got - expected) < 0.02 * abs(expected)
    assert got < 5 * TRUE_BITS  # KSG underestimates in 10 dimensions


def test_float64_equals_kdtree_exactly_and_blocks_do_not_matter(x64, rng):
    x, y = correlated_gaussians(rng, 300, 2)
    y = np.hstack([y, rng.normal(size=(300, 1))])  # different widths for x and y
    expected = kdtree_ksg_bits(x, y, k=5)
    for block in (1, 7, 300, 1000):
        assert abs(float(ksg(x, y, k=5, block_size=block)) - expected) < 1e-9


def test_feature_chunking_in_high_dimension(x64, rng, monkeypatch):
    ksg_module = sys.modules["jaxdse.baselines.kraskov"]
    x = rng.normal(size=(60, 50))
    y = x[:, :1] + 0.1 * rng.normal(size=(60, 1))
    monkeypatch.setattr(ksg_module, "_CHUNK_ELEMENTS", 60 * 30 * 3)  # 3-feature chunks, with padding
    assert abs(float(ksg(x, y, block_size=30)) - kdtree_ksg_bits(x, y)) < 1e-9


def test_independent_variables_near_zero_and_base(rng):
    x = rng.normal(size=(1000, 2))
    y = rng.normal(size=(1000, 1))
    bits = float(ksg(x, y))
    assert abs(bits) < 0.05
    x, y = correlated_gaussians(rng, 500, 1)
    assert float(ksg(x, y, base=np.e)) == pytest.approx(float(ksg(x, y)) * np.log(2), rel=1e-5)


def test_jit_and_vmap(rng):
    x, y = correlated_gaussians(rng, 200, 1)
    eager = float(ksg(x, y))
    jitted = jax.jit(ksg, static_argnames=("k", "block_size"))
    assert float(jitted(x, y)) == pytest.approx(eager, abs=1e-6)
    ys = jnp.stack([jnp.asarray(y, jnp.float32), jnp.asarray(rng.normal(size=(200, 1)), jnp.float32)])
    batched = jax.vmap(lambda yy: ksg(x, yy))(ys)
    assert float(batched[0]) == pytest.approx(eager, abs=1e-6)
    assert float(batched[1]) < 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(k=0), ValueError, "k"),
        (dict(k=10), ValueError, "k"),
        (dict(k=2.0), TypeError, "k"),
        (dict(block_size=0), ValueError, "block_size"),
        (dict(base=-2.0), ValueError, "base"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ksg(np.zeros((10, 2)), np.zeros((10, 1)), **kwargs)


def test_bad_samples():
    with pytest.raises(ValueError, match="same number of rows"):
        ksg(np.zeros((10, 2)), np.zeros((9, 1)))
    with pytest.raises(ValueError, match="y must have shape"):
        ksg(np.zeros((10, 2)), np.float64(1.0))
    # Higher rank is flattened as everywhere else: [10, 1, 1] is [10, 1].
    x = np.random.default_rng(0).normal(size=(10, 2))
    assert float(ksg(x, x[:, :1, None], k=2)) == pytest.approx(float(ksg(x, x[:, :1], k=2)))
    with pytest.raises(ValueError, match="non-finite"):
        ksg(np.full((10, 1), np.inf), np.zeros(10))

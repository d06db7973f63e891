"""What users of neighbouring tools pass in: bandwidth rules in DSMI, labels of every kind,
precomputed matrices, any array type, integer seeds, standardisation and t="auto"."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse.kernels.points import resolved_sigma

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]])
    y = np.arange(200) % 4
    return (centres[y] + rng.normal(size=(200, 2))).astype(np.float32), y


def test_a_bandwidth_rule_is_resolved_once_on_the_whole_set(separated):
    z, y = separated
    median = float(resolved_sigma(z, "median"))
    by_rule = jaxdse.dsmi_terms(z, y, key=KEY, sigma="median")
    by_number = jaxdse.dsmi_terms(z, y, key=KEY, sigma=median)
    # The same kernel in every subset: the same number, and clearly positive
    # for separated classes (a per-subset median gave about -2.5 bits).
    np.testing.assert_allclose(by_rule.conditional_entropy, by_number.conditional_entropy, atol=2e-4)
    assert float(by_rule.value) == pytest.approx(float(by_number.value), abs=2e-4)
    assert float(by_rule.value) > 1.0
    # knn: each point keeps the bandwidth it has in the whole set.
    plugin = jaxdse.dsmi_terms(z, y, key=KEY, sigma="knn", estimator="plugin")
    assert float(plugin.total_entropy) == pytest.approx(float(jaxdse.dse(z, sigma="knn")), abs=1e-4)
    assert float(jaxdse.dsmi(z, y, key=KEY, sigma="knn")) > 0.5
    assert float(jaxdse.dsmi(z, y, key=KEY, sigma="knn:3")) > 0.5


def test_labels_of_every_kind_mean_the_same(separated):
    z, y = separated
    expected = float(jaxdse.dsmi(z, y, key=KEY, sigma=5.0))
    names = np.array(["north", "east", "south", "west"])[y]
    one_hot = np.eye(4, dtype=np.float32)[y]
    for labels in (names, one_hot, one_hot.astype(int), y.reshape(-1, 1), list(y)):
        assert float(jaxdse.dsmi(z, labels, key=KEY, sigma=5.0)) == pytest.approx(expected, abs=1e-6)
    # A traced integer one-hot array under jit: argmax, NaN for a row that is not one-hot.
    f = jax.jit(lambda z, y: jaxdse.dsmi(z, y, key=KEY, sigma=5.0, num_classes=4, max_class_size=56))
    assert float(f(z, one_hot.astype(np.int32))) == pytest.approx(expected, abs=1e-5)
    broken = one_hot.astype(np.int32).copy()
    broken[0] = 0
    assert np.isnan(float(f(z, broken)))
    # Missing text labels are not a class of their own.
    for missing in (None, float("nan")):
        gappy = names.astype(object)
        gappy[5] = missing
        with pytest.raises(ValueError, match="y has 1 missing labels"):
            jaxdse.dsmi(z, gappy, key=KEY, sigma=5.0)


def test_precomputed_distances_and_affinities_equal_the_points(separated):
    from scipy.spatial.distance import cdist

    z, y = separated
    D = cdist(z, z).astype(np.float32)
    for sigma in (5.0, "median", "knn"):
        assert float(jaxdse.dse(D, sigma=sigma, precomputed="distance")) == pytest.approx(
            float(jaxdse.dse(z, sigma=sigma)), abs=2e-4
        )
    G = np.asarray(jaxdse.gaussian_affinity(z, sigma=5.0))
    assert float(jaxdse.dse(G, precomputed="affinity")) == pytest.approx(float(jaxdse.dse(z, sigma=5.0)), abs=2e-4)
    mask = np.arange(200) < 120
    D_nan = D.copy()
    D_nan[~mask] = np.nan  # rows a mask drops may hold anything
    assert float(jaxdse.dse(D_nan, sigma="knn", precomputed="distance", mask=mask)) == pytest.approx(
        float(jaxdse.dse(D[:120, :120], sigma="knn", precomputed="distance")), abs=2e-4
    )
    assert float(jaxdse.dsmi(D, y, key=KEY, sigma="median", precomputed="distance")) == pytest.approx(
        float(jaxdse.dsmi(z, y, key=KEY, sigma="median")), abs=2e-4
    )
    assert float(jaxdse.dsmi(G, y, key=KEY, precomputed="affinity")) == pytest.approx(
        float(jaxdse.dsmi(z, y, key=KEY, sigma=5.0)), abs=2e-4
    )
    est = jaxdse.dse_estimate(G, precomputed="affinity", solver="slq", key=0)
    assert abs(float(est.value) - float(jaxdse.dse(G, precomputed="affinity"))) <= 3 * float(est.stderr) + 1e-3


@pytest.mark.parametrize(
    "matrix,kwargs,word",
    [
        (np.array([[0.0, 1.0], [2.0, 0.0]]), dict(precomputed="distance"), "symmetric"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), dict(precomputed="distance"), "non-negative"),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), dict(precomputed="distance"), "zero diagonal"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), dict(precomputed="affinity"), "row of zeros"),
        (np.eye(2), dict(precomputed="affinity", sigma="median"), "sigma='median' has nothing to act on"),
        (np.eye(2), dict(precomputed="affinity", sigma=2.0), "sigma=2.0 has nothing to act on"),
        (np.ones((3, 2)), dict(precomputed="distance"), "square"),
        (np.zeros((2, 2)), dict(precomputed="distance", sigma="sqrt_dim"), "sqrt_dim"),
        (np.ones((2, 2)), dict(precomputed="kernel"), "precomputed must be one of"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), dict(precomputed="distance"), "non-finite"),
    ],
)
def test_precomputed_matrices_are_checked(matrix, kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        jaxdse.dse(matrix, **kwargs)


def test_precomputed_matrices_that_fail_the_checks_give_nan_under_jit():
    z = np.random.default_rng(3).normal(size=(12, 2))
    D = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    G = np.asarray(jaxdse.gaussian_affinity(z, sigma=1.0), np.float64)
    y = np.arange(12) % 2
    sigma = {"distance": dict(sigma=1.0), "affinity": {}}
    dse = {
        kind: jax.jit(lambda a, m, kind=kind: jaxdse.dse(a, **sigma[kind], precomputed=kind, mask=m)) for kind in sigma
    }
    dsmi = jax.jit(
        lambda a: jaxdse.dsmi(a, y, sigma=1.0, precomputed="distance", key=0, num_classes=2, max_class_size=6)
    )
    everything = np.ones(12, bool)

    def broken(M, i, j, value):
        M = M.copy()
        M[i, j] = value
        return M

    bad = {
        "distance": [broken(D, 0, 1, D[0, 1] + 1.0), broken(broken(D, 0, 1, -1.0), 1, 0, -1.0), broken(D, 0, 0, 1.0)],
        "affinity": [
            broken(G, 0, 1, G[0, 1] + 0.5),
            broken(broken(G, 0, 1, -0.1), 1, 0, -0.1),
            G * (np.arange(12) > 0)[:, None] * (np.arange(12) > 0),
        ],
    }
    for kind, matrices in bad.items():
        good = float(dse[kind](D if kind == "distance" else G, everything))
        assert np.isfinite(good)
        for M in matrices:
            assert np.isnan(float(dse[kind](M, everything))), kind
            # Rows and columns 0 (and 1) dropped: what remains is valid.
            keep = np.arange(12) >= 2
            kept = float(dse[kind](M, keep))
            whole = (D if kind == "distance" else G)[2:, 2:]
            assert kept == pytest.approx(float(jaxdse.dse(whole, **sigma[kind], precomputed=kind)), abs=1e-5)
    assert np.isfinite(float(dsmi(D)))
    assert np.isnan(float(dsmi(bad["distance"][0])))


def test_any_array_in():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    expected = float(jaxdse.dse(x, sigma=2.0))
    assert float(jaxdse.dse(x.tolist(), sigma=2.0)) == pytest.approx(expected, abs=1e-5)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    assert float(jaxdse.dse(frame, sigma=2.0)) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(TypeError, match="non-numeric columns"):
        jaxdse.dse(frame.assign(name="x"), sigma=2.0)
    images = rng.normal(size=(30, 2, 2, 3)).astype(np.float32)
    assert float(jaxdse.dse(images, sigma=2.0)) == pytest.approx(float(jaxdse.dse(images.reshape(30, -1), sigma=2.0)))
    with pytest.raises(TypeError, match="x must be a rectangular numeric array"):
        jaxdse.dse([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match="masked array"):
        jaxdse.dse(np.ma.masked_array(x))
    half = jnp.asarray(x, jnp.bfloat16)
    assert np.isfinite(float(jaxdse.dse(half, sigma=2.0)))
    assert float(jaxdse.dse(x, sigma=2.0, t=[1.0, 2.0])[0]) == pytest.approx(expected, abs=1e-6)


def test_torch_tensors_through_dlpack():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    expected = float(jaxdse.dse(x, sigma=2.0))
    tensor = torch.tensor(x, requires_grad=True)
    assert float(jaxdse.dse(tensor, sigma=2.0)) == pytest.approx(expected, abs=1e-6)
    # Shared memory, not a copy: a CPU tensor arrives through DLPack.
    plain = torch.tensor(x)
    assert np.shares_memory(np.asarray(jaxdse._checks.as_array(plain, "x")), plain.numpy())
    # Odd layouts and other dtypes: a transposed view, float64, images [n, ...].
    assert float(jaxdse.dse(torch.tensor(x.T.copy()).T, sigma=2.0)) == pytest.approx(expected, abs=1e-6)
    assert float(jaxdse.dse(torch.tensor(x, dtype=torch.float64), sigma=2.0)) == pytest.approx(expected, abs=1e-5)
    images = torch.tensor(x.reshape(30, 1, 3, 1))
    assert float(jaxdse.dse(images, sigma=2.0)) == pytest.approx(expected, abs=1e-6)
    # Labels as a tensor, and the same contract for bad input.
    y = torch.arange(30) % 3
    assert float(jaxdse.dsmi(plain, y, key=0, sigma=2.0)) == float(jaxdse.dsmi(x, y.numpy(), key=0, sigma=2.0))
    with pytest.raises(ValueError, match=r"x has 1 row\(s\) with non-finite"):
        jaxdse.dse(torch.tensor(np.where(np.arange(30)[:, None] == 4, np.nan, x)), sigma=2.0)
    with pytest.raises(TypeError, match="x must have a real numeric dtype"):
        jaxdse.dse(torch.ones(30, 3, dtype=torch.bool))


def test_integer_seeds_wherever_a_key_is_taken(separated):
    z, y = separated
    assert float(jaxdse.dsmi(z, y, key=3, sigma=5.0)) == float(jaxdse.dsmi(z, y, key=jax.random.key(3), sigma=5.0))
    assert float(jaxdse.dse(z, solver="slq", key=3, sigma=5.0)) == float(
        jaxdse.dse(z, solver="slq", key=jax.random.key(3), sigma=5.0)
    )
    with pytest.raises(ValueError, match="seed"):
        jaxdse.dsmi(z, y, key=-1)
    with pytest.raises(TypeError, match="key must be"):
        jaxdse.dsmi(z, y, key=1.5)
    # ... and the rest of the library's keys.
    from flax import nnx

    from jaxdse import baselines, zoo

    def same(f):
        a, b = f(3), f(jax.random.key(3))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))

    same(lambda k: jaxdse.cluster_reference(z, 3, key=k, method="diffusion"))
    same(lambda k: jaxdse.cluster_reference(z, 3, key=k, method="spectral"))
    same(lambda k: zoo.train_test_split(z, y, key=k))
    same(lambda k: nnx.state(zoo.CNN(width=2, depth=1, features=4, rngs=k)))
    same(
        lambda k: (
            baselines.mine(
                z, y[:, None].astype(z.dtype), key=k, hidden=(4,), batch_size=20, epochs=2, final_epochs=1
            ).value
        )
    )
    with pytest.raises(ValueError, match="seed"):
        zoo.train_test_split(z, y, key=-1)


def test_standardize_is_per_feature_z_scoring():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3)) * np.array([1.0, 100.0, 0.01])
    z = (x - x.mean(0)) / x.std(0)
    assert float(jaxdse.dse(x, sigma="median", standardize=True)) == pytest.approx(
        float(jaxdse.dse(z, sigma="median")), abs=1e-4
    )
    mask = np.arange(60) < 40
    assert float(jaxdse.dse(x, sigma=1.0, standardize=True, mask=mask)) == pytest.approx(
        float(jaxdse.dse(x[:40], sigma=1.0, standardize=True)), abs=1e-4
    )


def test_t_auto_takes_the_knee_of_dse_against_t():
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    t = float(jaxdse.choose_t(x, sigma=3.0))
    assert 1.0 < t < 100.0
    assert float(jaxdse.dse(x, sigma=3.0, t="auto")) == pytest.approx(float(jaxdse.dse(x, sigma=3.0, t=t)), abs=1e-6)
    jitted = jax.jit(lambda x: jaxdse.dse(x, sigma=3.0, t="auto"))(x)
    assert float(jitted) == pytest.approx(float(jaxdse.dse(x, sigma=3.0, t=t)), abs=1e-5)
    # Far apart points: DSE = log2 n for every t; the smallest t is as good as any.
    assert float(jaxdse.choose_t(x, sigma=1e-3)) == 1.0
    y = np.arange(100) % 2
    assert float(jaxdse.dsmi(x, y, key=0, sigma=3.0, t="auto")) == pytest.approx(
        float(jaxdse.dsmi(x, y, key=0, sigma=3.0, t=t)), abs=1e-6
    )
    with pytest.raises(ValueError, match="'auto'"):
        jaxdse.dse(x, t="knee")


def test_results_report_the_t_they_used():
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    t = float(jaxdse.choose_t(x, sigma=3.0))
    est = jax.jit(lambda x: jaxdse.dse_estimate(x, sigma=3.0, t="auto"))(x)
    assert float(est.t) == t
    assert float(est.value) == pytest.approx(float(jaxdse.dse(x, sigma=3.0, t=t)), abs=1e-5)
    np.testing.assert_array_equal(jaxdse.dse_estimate(x, sigma=3.0, t=[1.0, 2.0]).t, [1.0, 2.0])
    y = np.arange(100) % 2
    assert float(jaxdse.dsmi_terms(x, y, key=0, sigma=3.0, t="auto").t) == t
    assert float(jaxdse.dsmi_terms(x, y, key=0, sigma=3.0, t=2.5).t) == 2.5
    # Points far apart: DSE = log2 n for every t, and the smallest t is reported.
    apart = jax.jit(lambda x: jaxdse.dse_estimate(x, sigma=1e-3, t="auto"))(x)
    assert (float(apart.t), float(apart.value)) == (1.0, pytest.approx(np.log2(100), abs=1e-5))

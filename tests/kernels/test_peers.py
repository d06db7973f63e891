"""Kernel objects, recipes and the peers' own definitions (manylatents, graphtools, PHATE).

The peers' expectations (five blobs -> 5 persistent eigenvalues at t = 500, a
swiss roll -> 1 at t = 2000, with their data) always run. The parity tests
compare with the installed packages (the ``peers`` extra) and are skipped
without them.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from benchmarks import peers
from benchmarks.peers import five_blobs, parity_sets, swiss_roll
from jaxdse import AlphaDecayKernel, KNNKernel, recipes
from jaxdse.recipes import _two_line_knee

datasets_sk = pytest.importorskip("sklearn.datasets")


PARITY = dict(parity_sets())


# ---------------------------------------------------------------- independent numpy references


def _sq_dist(x):
    x = np.asarray(x, np.float64)
    return np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)


def knn_kernel_reference(x, k):
    """The kNN kernel written out directly: loops over neighbour lists."""
    d2 = _sq_dist(x)
    n = d2.shape[0]
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    s = np.sqrt(d2[np.arange(n), order[:, -1]])
    np.fill_diagonal(d2, 0.0)
    K = np.zeros((n, n))
    for i in range(n):
        for j in order[i]:
            K[i, j] = np.exp(-d2[i, j] / (s[i] * s[j]))
    K = np.maximum(K, K.T)
    np.fill_diagonal(K, 1.0)
    return K


def alpha_decay_reference(x, knn, decay, thresh):
    d = np.sqrt(_sq_dist(x))
    eps = np.sort(d, axis=1)[:, knn]  # column 0 is the point itself
    A = np.exp(-((d / eps[:, None]) ** decay))
    A[A < thresh] = 0.0
    return (A + A.T) / 2


# ---------------------------------------------------------------- the peers' expectations


def test_five_blobs_have_five_persistent_eigenvalues():
    x = five_blobs()
    assert int(jaxdse.eigenvalue_count(x, **{**recipes.manylatents(), "t": 500})) == 5


def test_five_equal_blobs_count_five():
    # manylatents' test_dse_knn_mode_eigenvalue_count
    x = datasets_sk.make_blobs(n_samples=500, centers=5, cluster_std=0.3, random_state=42)[0]
    assert int(jaxdse.eigenvalue_count(x, kernel=KNNKernel(15), alpha=1.0, t=500)) == 5


def test_swiss_roll_has_one_persistent_eigenvalue():
    x = swiss_roll(500)
    lam = np.sort(np.abs(np.asarray(jaxdse.diffusion_eigenvalues(x, kernel=KNNKernel(15), alpha=1.0))))[::-1]
    assert lam[1] / lam[0] > 0.9  # no spectral gap after the first
    assert int(jaxdse.eigenvalue_count(x, **{**recipes.manylatents(), "t": 2000})) == 1


def test_alpha_changes_the_blob_spectrum():
    x = five_blobs()
    a0 = np.sort(np.abs(np.asarray(jaxdse.diffusion_eigenvalues(x, kernel=KNNKernel(15), alpha=0.0))))
    a1 = np.sort(np.abs(np.asarray(jaxdse.diffusion_eigenvalues(x, kernel=KNNKernel(15), alpha=1.0))))
    assert not np.allclose(a0, a1, atol=1e-3)


# ---------------------------------------------------------------- kernels against direct formulas


@pytest.mark.parametrize("name", ["gaussian", "duplicates"])
def test_knn_kernel_matches_its_formula(x64, name):
    x = PARITY[name][:120]
    G = np.asarray(KNNKernel(k=7).affinity(x))
    np.testing.assert_allclose(G, knn_kernel_reference(x, 7), atol=1e-12)


@pytest.mark.parametrize("name", ["gaussian", "swiss roll"])
def test_alpha_decay_kernel_matches_its_formula(x64, name):
    x = PARITY[name][:120]
    G = np.asarray(AlphaDecayKernel(knn=5, decay=40, thresh=1e-4).affinity(x))
    np.testing.assert_allclose(G, alpha_decay_reference(x, 5, 40, 1e-4), atol=1e-12)
    assert np.all(np.diag(G) == 1.0) and np.array_equal(G, G.T)


def test_kernel_is_invariant_to_scale_and_shift(x64):
    x = PARITY["gaussian"][:80]
    for kern in (KNNKernel(5), AlphaDecayKernel(5, 10)):
        np.testing.assert_allclose(kern.affinity(x), kern.affinity(1e6 * x + 3.0), atol=1e-9)


@pytest.mark.slow
def test_mask_equals_subset(x64):
    x = PARITY["gaussian"][:60]
    mask = np.arange(60) % 3 != 0
    for kern in (KNNKernel(5), AlphaDecayKernel(4, 20)):
        G = np.asarray(kern.affinity(x, mask))
        np.testing.assert_allclose(G[np.ix_(mask, mask)], kern.affinity(x[mask]), atol=1e-12)
        assert np.all(G[~mask] == 0) and np.all(G[:, ~mask] == 0)
    kern = KNNKernel(5)
    np.testing.assert_allclose(jaxdse.dse(x, kernel=kern, mask=mask), jaxdse.dse(x[mask], kernel=kern), atol=1e-10)


def test_dse_with_kernel_equals_precomputed_affinity():
    x = PARITY["gaussian"][:80]
    kern = KNNKernel(10)
    G = kern.affinity(x)
    for alpha in (0.0, 1.0):
        a = jaxdse.dse(x, kernel=kern, alpha=alpha, t=3)
        b = jaxdse.dse(G, precomputed="affinity", alpha=alpha, t=3)
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.slow
def test_dsmi_takes_blocks_of_one_kernel():
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 8.0])
    y = np.repeat([0, 1], 30)
    kern = KNNKernel(6)
    a = jaxdse.dsmi(z, y, kernel=kern, alpha=1.0, estimator="plugin")
    b = jaxdse.dsmi(kern.affinity(z), y, precomputed="affinity", alpha=1.0, estimator="plugin")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert float(a) > 0.5  # two separated clusters: about one bit


@pytest.mark.slow
def test_kernels_under_jit_and_their_gradient(x64):
    x = jnp.asarray(PARITY["gaussian"][:30])
    for kern in (KNNKernel(5), AlphaDecayKernel(5, 8)):
        f = lambda x: jaxdse.dse(x, kernel=kern, alpha=1.0, t=2)  # noqa: E731
        np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-10)
        g = jax.grad(f)(x)
        assert np.all(np.isfinite(g))
        # Neighbour sets do not change for a tiny step: the gradient is that of the fixed-set kernel.
        v = jnp.asarray(np.random.default_rng(4).normal(size=x.shape))
        h = 1e-6
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(g, v), fd, rtol=1e-4)


def test_kernels_are_static_values():
    assert KNNKernel() == KNNKernel(k=15) and hash(KNNKernel()) == hash(KNNKernel(15))
    assert jax.tree_util.tree_leaves(AlphaDecayKernel()) == []
    assert AlphaDecayKernel(thresh=1e-30).thresh == np.finfo(float).eps  # graphtools' floor


def test_bad_kernel_settings_name_the_argument():
    with pytest.raises(ValueError, match="k must"):
        KNNKernel(k=0)
    with pytest.raises(TypeError, match="k must"):
        KNNKernel(k=2.5)
    with pytest.raises(ValueError, match="knn must"):
        AlphaDecayKernel(knn=0)
    with pytest.raises(ValueError, match="decay"):
        AlphaDecayKernel(decay=0)
    with pytest.raises(ValueError, match="decay"):
        AlphaDecayKernel(decay=-1.0)
    with pytest.raises(TypeError, match="decay"):
        AlphaDecayKernel(decay=None)
    with pytest.raises(ValueError, match="thresh"):
        AlphaDecayKernel(thresh=1.0)
    x = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=r"k=10.*n - 1 = 9"):
        jaxdse.dse(x, kernel=KNNKernel(10))
    with pytest.raises(ValueError, match=r"knn=12"):
        AlphaDecayKernel(knn=12).affinity(x)
    with pytest.raises(ValueError, match=r"k=9.*n - 1 = 7"):  # counted on the kept rows
        jaxdse.dse(x, kernel=KNNKernel(9), mask=np.arange(10) < 8)


def test_kernel_does_not_combine_with_what_it_replaces():
    x = np.random.default_rng(0).normal(size=(20, 2))
    kern = KNNKernel(5)
    with pytest.raises(ValueError, match="sigma=1.0 has nothing to act on"):
        jaxdse.dse(x, kernel=kern, sigma=1.0)
    with pytest.raises(ValueError, match="sigma='median'"):
        jaxdse.dsmi(x, np.arange(20) % 2, kernel=kern, sigma="median", key=0)
    with pytest.raises(ValueError, match="precomputed"):
        jaxdse.dse(x, kernel=kern, precomputed="distance")
    with pytest.raises(ValueError, match="max_n"):
        jaxdse.dse(x, kernel=kern, max_n=10, key=0)
    with pytest.raises(TypeError, match="kernel must be"):
        jaxdse.dse(x, kernel="knn")


def test_eigenvalue_count_checks_and_sigma_path():
    x = np.concatenate([np.zeros((15, 2)), np.full((15, 2), 50.0)]) + np.random.default_rng(0).normal(size=(30, 2))
    assert int(jaxdse.eigenvalue_count(x, t=100, sigma=2.0)) == 2
    lam = np.abs(np.asarray(jaxdse.diffusion_eigenvalues(x, sigma=2.0)))
    for t in (1.0, 5.0):
        assert int(jaxdse.eigenvalue_count(x, t=t, sigma=2.0, threshold=0.3)) == int(np.sum(lam**t > 0.3))
    for bad in (0.0, 1.0, 2.0, -1e-3):
        with pytest.raises(ValueError, match="threshold"):
            jaxdse.eigenvalue_count(x, t=10, threshold=bad)
    with pytest.raises(ValueError, match="t must"):
        jaxdse.eigenvalue_count(x, t=0)


def test_keyword_recipes():
    x = PARITY["gaussian"][:50]
    np.testing.assert_allclose(jaxdse.dse(x, **recipes.dse_dsmi()), jaxdse.dse(x), rtol=1e-6)
    kw = recipes.manylatents()
    assert kw["kernel"] == KNNKernel(15) and kw["alpha"] == 1.0 and kw["t"] == 3
    kw = recipes.phate(knn=4, decay=20)
    assert kw["kernel"] == AlphaDecayKernel(4, 20, 1e-4) and kw["base"] == math.e
    h = recipes.l2_normalize(x)
    np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0, rtol=1e-6)
    direct = jaxdse.dse(h, sigma=1.0, t=1.0)
    np.testing.assert_allclose(jaxdse.dse(h, **recipes.transformer_dispersion()), direct, rtol=1e-6)


def test_transformer_dispersion_equals_the_authors_call(x64):
    """The study's compute_DSE: rows / (|x| + 1e-12), then dse-dsmi's function with sigma 1, t 1."""
    dse_dsmi = pytest.importorskip("dse_dsmi")
    layers = [PARITY["gaussian"][:120] * 3.0, PARITY["blobs"][:120], PARITY["duplicates"][:120]]
    for z in layers:
        unit = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)
        want = dse_dsmi.diffusion_spectral_entropy(unit, gaussian_kernel_sigma=1, t=1)
        got = float(jaxdse.dse(recipes.l2_normalize(z), **recipes.transformer_dispersion()))
        assert abs(got - want) < 1e-6, (got, want)
    sequence = [z[None] for z in layers]  # L layers [B = 1, T, D] of different widths
    profile = jaxdse.layerwise(sequence, normalize="l2", **recipes.transformer_dispersion())
    want = [
        dse_dsmi.diffusion_spectral_entropy(
            z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12), gaussian_kernel_sigma=1, t=1
        )
        for z in layers
    ]
    np.testing.assert_allclose(np.asarray(profile.value), want, atol=1e-6)


def test_phate_vne_units_and_labels(x64):
    x = PARITY["gaussian"][:80]
    h = np.asarray(recipes.phate_vne(x, t_max=5))
    G = np.asarray(AlphaDecayKernel().affinity(x))
    s = np.linalg.svd(G / G.sum(1, keepdims=True), compute_uv=False)
    for t in range(5):  # entry t is the power t + 1, in nats
        p = s ** (t + 1) / np.sum(s ** (t + 1))
        np.testing.assert_allclose(h[t], -np.sum(p[p > 0] * np.log(p[p > 0])), rtol=1e-10)
    with pytest.raises(ValueError, match="t_max"):
        recipes.phate_t(x, t_max=2)


def test_two_line_knee_on_a_corner():
    y = np.concatenate([10.0 - 2.0 * np.arange(6), 0.0 - 0.01 * np.arange(1, 15)])
    assert _two_line_knee(y) == 5


# ---------------------------------------------------------------- parity with the installed peers


@pytest.fixture(scope="module")
def manylatents_dse():
    """manylatents' DSE metric module and a context to call it in (:func:`benchmarks.peers.manylatents_dse`)."""
    pytest.importorskip("manylatents")
    pytest.importorskip("omegaconf")
    return peers.manylatents_dse()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PARITY))
def test_parity_manylatents(x64, manylatents_dse, name):
    module, context = manylatents_dse
    x = PARITY[name]
    ts = (1, 3, 10)
    with context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [module.DiffusionSpectralEntropy(x, t=t) for t in ts]
        count = module.DiffusionSpectralEntropy(x, output_mode="eigenvalue_count", t_high=500)
    kw = recipes.manylatents()
    ours = np.asarray(jaxdse.dse(x, **{**kw, "t": jnp.asarray(ts, float)}))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)  # bits; measured <= 7e-8
    assert float(jaxdse.dse(x, **kw)) == pytest.approx(theirs[1], abs=1e-6)
    assert int(jaxdse.eigenvalue_count(x, **{**kw, "t": 500})) == count


def test_parity_manylatents_float32(manylatents_dse):
    module, context = manylatents_dse
    x = PARITY["blobs"]
    with context():
        theirs = module.DiffusionSpectralEntropy(x)
    assert float(jaxdse.dse(x, **recipes.manylatents())) == pytest.approx(theirs, abs=1e-3)  # measured 1.2e-4


@pytest.mark.parametrize("name", list(PARITY))
def test_parity_graphtools_kernel(x64, name):
    graphtools = pytest.importorskip("graphtools")
    x = PARITY[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        K = graphtools.Graph(x, knn=5, decay=40, thresh=1e-4, n_pca=None, verbose=0).K.toarray()
    np.testing.assert_allclose(np.asarray(AlphaDecayKernel(5, 40, 1e-4).affinity(x)), K, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PARITY))
def test_parity_phate(x64, name):
    phate = pytest.importorskip("phate")
    x = PARITY[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op = phate.PHATE(knn=5, decay=40, verbose=0, n_jobs=1).fit(x)
        _, theirs = op._von_neumann_entropy(t_max=100)
        t_theirs = phate.vne.find_knee_point(theirs, np.arange(100))
    np.testing.assert_allclose(np.asarray(recipes.phate_vne(x)), theirs, atol=1e-9)  # nats; measured 4e-12
    assert recipes.phate_t(x) == t_theirs


def test_knee_matches_phate_on_random_curves():
    phate = pytest.importorskip("phate")
    rng = np.random.default_rng(5)
    for _ in range(20):
        T = int(rng.integers(3, 60))
        y = np.cumsum(-np.abs(rng.normal(size=T)) * np.exp(-np.arange(T) / rng.uniform(1, 20)))
        assert _two_line_knee(y) == phate.vne.find_knee_point(y)

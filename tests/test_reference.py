"""Agreement with the authors' reference package ``dse-dsmi`` (a test extra)."""

import jax
import numpy as np
import pytest

import jaxdse

dse_dsmi = pytest.importorskip("dse_dsmi", reason="the reference package dse-dsmi is a test extra")

# Scales of the data relative to the default sigma = 10: the kernel is nearly the
# identity (points far apart), nearly constant (points close), or in between.
SCALES = {"identity": 10.0, "between": 1.0, "constant": 0.01}


def gaussian(n, d, scale, seed=0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, d))


@pytest.mark.parametrize("scale", SCALES.values(), ids=SCALES.keys())
@pytest.mark.parametrize("n", [300, 1000])
def test_default_dse_matches_reference(n, scale):
    x = gaussian(n, 64, scale)
    ref = dse_dsmi.diffusion_spectral_entropy(x)
    with jax.enable_x64(True):
        ours64 = float(jaxdse.dse(x))
    ours32 = float(jaxdse.dse(x.astype(np.float32)))
    assert abs(ours64 - ref) < 1e-6
    assert abs(ours32 - ref) < 1e-3


def test_reference_digits_and_t():
    from jaxdse.data import load_digits

    x, _ = load_digits(dtype=np.float64)
    for sigma, t in ((10.0, 1), (40.0, 3)):
        ref = dse_dsmi.diffusion_spectral_entropy(x, gaussian_kernel_sigma=sigma, t=t)
        with jax.enable_x64(True):
            assert abs(float(jaxdse.dse(x, sigma=sigma, t=float(t))) - ref) < 1e-6
        assert abs(float(jaxdse.dse(x.astype(np.float32), sigma=sigma, t=float(t))) - ref) < 1e-3


@pytest.mark.slow
def test_reference_at_n_4000_nearly_constant_kernel():
    scale = 0.02
    x = gaussian(4000, 256, scale, seed=1)
    ref = dse_dsmi.diffusion_spectral_entropy(x)
    with jax.enable_x64(True):
        assert abs(float(jaxdse.dse(x)) - ref) < 1e-6
    assert abs(float(jaxdse.dse(x.astype(np.float32))) - ref) < 1e-3


# ---------------------------------------------------------------- DSMI


def _mean_dsmi_ours(z, y, **kwargs):
    keys = jax.random.split(jax.random.PRNGKey(0), 10)
    labels = np.unique(np.asarray(y), return_inverse=True)[1].reshape(-1)
    from jaxdse.mi.engine import pad_size

    m = pad_size(int(np.bincount(labels).max()), len(labels))
    c = int(labels.max()) + 1
    f = jax.jit(lambda k: jaxdse.dsmi(z, labels, key=k, num_classes=c, max_class_size=m, **kwargs))
    return float(np.mean([float(f(k)) for k in keys]))


def _mean_dsmi_reference(z, y, **kwargs):
    return float(
        np.mean(
            [dse_dsmi.diffusion_spectral_mutual_information(z, y, random_seed=seed, **kwargs)[0] for seed in range(10)]
        )
    )


@pytest.fixture(scope="module")
def digits():
    from jaxdse.data import load_digits

    return load_digits(dtype=np.float64)


def test_dsmi_digits_labels_matches_reference(digits):
    x, y = digits
    ref = _mean_dsmi_reference(x, y)
    ours = _mean_dsmi_ours(x.astype(np.float32), y)
    assert abs(ours - ref) < 0.02, (ours, ref)


def test_dsmi_digits_clustered_pixels_matches_reference(digits):
    x, _ = digits
    ours_clusters = np.asarray(jaxdse.cluster_reference(x, 10))
    _, ref_clusters = dse_dsmi.diffusion_spectral_mutual_information(x, x, num_repetitions=1)
    from sklearn.metrics import adjusted_rand_score

    # Same clustering as the reference with the default key.
    assert adjusted_rand_score(ref_clusters.reshape(-1), ours_clusters) > 0.999
    ref = _mean_dsmi_reference(x, x, precomputed_clusters=ref_clusters)
    ours = _mean_dsmi_ours(x.astype(np.float32), ours_clusters)
    assert abs(ours - ref) < 0.02, (ours, ref)


def test_dsmi_blobs_matches_reference():
    x, y = jaxdse.data.gaussian_blobs(600, 20, 3, spread=5.0, separation=12.0, seed=2)
    ref = _mean_dsmi_reference(x.astype(np.float64), y.reshape(-1, 1), gaussian_kernel_sigma=np.sqrt(20))
    ours = _mean_dsmi_ours(x, y, sigma=float(np.sqrt(20)))
    assert ref > 0.3  # the labels carry information here
    assert abs(ours - ref) < 0.02, (ours, ref)

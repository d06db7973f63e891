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

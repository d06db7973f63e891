import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Run the test body with jax's float64 mode on."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def blobs(rng, n=60, d=5, k=3, sep=6.0):
    centres = rng.normal(scale=sep, size=(k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)), labels

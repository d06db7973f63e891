import jax
import numpy as np
import pytest

import jaxdse
from jaxdse.baselines import (
    adjacency_spectral_entropy,
    adjacency_spectral_mutual_information,
    cse,
    csmi,
    matrix_entry_entropy,
    matrix_entry_mutual_information,
)
from jaxdse.data import load_digits

dse_dsmi = pytest.importorskip("dse_dsmi")


def plugin_by_slices(entropy, z, y):
    """H(Z) - sum_c p(c) H(Z | c), each entropy on the sliced rows."""
    total = float(entropy(z))
    return total - sum(np.mean(y == c) * float(entropy(z[y == c])) for c in np.unique(y))


def test_csmi_plugin_equals_the_sliced_formula(rng):
    z = rng.integers(0, 4, size=(90, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=90)
    z[y == 0, 0] = 0.0  # class 0 is more concentrated: information
    expected = plugin_by_slices(lambda a: cse(a, num_bins_per_dim=4), z, y)
    got = float(csmi(z, y, estimator="plugin", num_bins_per_dim=4))
    assert got == pytest.approx(expected, abs=1e-5)
    assert got > 0.05


def test_csmi_conditional_terms_match_the_reference(x64):
    from jaxdse.baselines.mi import ClassicEntropy

    x, y = load_digits(dtype=np.float64)
    x, y = x[:600], y[:600]
    terms = jaxdse.mutual_information(x, y, entropy=ClassicEntropy(2), params=2.0, key=jax.random.key(0))
    for c in range(10):
        with np.errstate(invalid="ignore"):
            ref = dse_dsmi.diffusion_spectral_entropy(x[y == c], classic_shannon_entropy=True)
        assert abs(float(terms.conditional_entropy[c]) - ref) < 1e-9


def test_csmi_agrees_with_the_reference_in_expectation():
    x, y = load_digits()
    ours = np.mean([float(csmi(x, y, key=jax.random.key(i))) for i in range(4)])
    with np.errstate(invalid="ignore"):
        ref = np.mean(
            [
                dse_dsmi.diffusion_spectral_mutual_information(
                    x.astype(np.float64), y, classic_shannon_entropy=True, random_seed=s
                )[0]
                for s in range(4)
            ]
        )
    assert abs(ours - ref) < 0.01


def test_csmi_is_deterministic_for_a_key_and_needs_one(rng):
    z = rng.normal(size=(60, 2))
    y = rng.integers(0, 2, size=60)
    a = float(csmi(z, y, key=jax.random.key(3)))
    assert a == float(csmi(z, y, key=jax.random.key(3)))
    with pytest.raises(ValueError, match="key"):
        csmi(z, y)
    with pytest.raises(ValueError, match="num_bins_per_dim"):
        csmi(z, y, key=jax.random.key(0), num_bins_per_dim=0)
    with pytest.raises(ValueError, match="estimator"):
        csmi(z, y, key=jax.random.key(0), estimator="exact")


@pytest.mark.parametrize("kind", ["anisotropic", "knn"])
def test_adjacency_mi_plugin_equals_the_sliced_formula(x64, rng, kind):
    z = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(25, 2)) * 0.3 + 3.0])
    y = np.repeat([0, 1], [20, 25])
    expected = plugin_by_slices(lambda a: adjacency_spectral_entropy(a, kind=kind, knn=4, sigma=1.0), z, y)
    got = float(adjacency_spectral_mutual_information(z, y, kind=kind, knn=4, sigma=1.0, estimator="plugin"))
    assert got == pytest.approx(expected, abs=1e-4 if kind == "knn" else 1e-8)


def test_matrix_entry_mi_plugin_equals_the_sliced_formula(x64, rng):
    z = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(25, 2)) * 0.3 + 3.0])
    y = np.repeat([0, 1], [20, 25])
    expected = plugin_by_slices(lambda a: matrix_entry_entropy(a, sigma=1.0), z, y)
    got = float(matrix_entry_mutual_information(z, y, sigma=1.0, estimator="plugin"))
    assert got == pytest.approx(expected, abs=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["entries", "gaussian", "knn"])
def test_variant_mis_agree_with_the_reference_in_expectation(variant):
    x, y = load_digits()
    x, y = x[:300], y[:300]
    if variant == "entries":
        ours = lambda k: matrix_entry_mutual_information(x, y, key=k)  # noqa: E731
        ref = lambda s: dse_dsmi.diffusion_spectral_mutual_information(  # noqa: E731
            x.astype(np.float64), y, matrix_entry_entropy=True, random_seed=s
        )[0]
    else:
        kind = dict(use_knn=variant == "knn")
        ours = lambda k: adjacency_spectral_mutual_information(x, y, key=k, kind=variant)  # noqa: E731
        ref = lambda s: dse_dsmi.adjacency_spectral_mutual_information(  # noqa: E731
            x.astype(np.float64), y, random_seed=s, **kind
        )[0]
    a = np.array([float(ours(jax.random.key(i))) for i in range(10)])
    b = np.array([ref(s) for s in range(10)])
    # One subsample estimate varies from seed to seed (by about 0.03 bits for
    # the kNN and entry kinds, 0.002 for the Gaussian kind): the means of ten
    # must agree within four standard errors of their difference.
    stderr = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) < 4 * stderr + 1e-3


def test_bad_arguments_of_variant_mis(rng):
    z = rng.normal(size=(30, 2))
    y = rng.integers(0, 2, size=30)
    with pytest.raises(ValueError, match="kind"):
        adjacency_spectral_mutual_information(z, y, key=jax.random.key(0), kind="cosine")
    with pytest.raises(ValueError, match="sigma"):
        matrix_entry_mutual_information(z, y, key=jax.random.key(0), sigma=-1.0)
    with pytest.raises(ValueError, match="y"):
        matrix_entry_mutual_information(z, y[:10], key=jax.random.key(0))

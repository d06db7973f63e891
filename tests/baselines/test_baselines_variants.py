import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdse.baselines import adjacency_spectral_entropy, matrix_entry_entropy
from jaxdse.data import load_digits

dse_dsmi = pytest.importorskip("dse_dsmi")

REF_KIND = {"knn": dict(use_knn=True), "gaussian": {}, "anisotropic": dict(anisotropic=True)}

mee_jit = jax.jit(matrix_entry_entropy)
ase_jit = jax.jit(adjacency_spectral_entropy, static_argnames=("kind", "knn"))


def digits(rows):
    x, _ = load_digits(dtype=np.float64)
    return x[rows]


@pytest.mark.parametrize("data", ["digits", "normal"])
def test_matrix_entry_entropy_matches_reference(x64, rng, data):
    x = digits(slice(0, 300)) if data == "digits" else rng.normal(size=(250, 6)) * 4.0
    expected = dse_dsmi.diffusion_spectral_entropy(x, matrix_entry_entropy=True)
    assert abs(float(mee_jit(x)) - expected) < 1e-6
    # sigma is passed through: a different bandwidth gives the reference's other value.
    expected = dse_dsmi.diffusion_spectral_entropy(x, matrix_entry_entropy=True, gaussian_kernel_sigma=3.0)
    assert abs(float(mee_jit(x, sigma=3.0)) - expected) < 1e-6


@pytest.fixture
def one_blas_thread():
    """Both numpy's and jax's LAPACK on one thread, as the reference is usually run in tests.

    The kNN adjacency is not symmetric and often defective (points with the same
    neighbour set give equal rows): its zero eigenvalues come out of a general
    eigensolver as rounding noise of size eps^(1/m) for a Jordan block of size m.
    The same matrix through the same LAPACK routine gives the same noise, so we
    match the reference to ~1e-12 bits; but a multi-threaded BLAS sums in another
    order and moves either value by up to ~1e-5 bits (as does permuting the rows).
    """
    from threadpoolctl import threadpool_limits

    jnp.linalg.eigvals(jnp.eye(2))  # load jax's LAPACK so the limit reaches it
    with threadpool_limits(1):
        yield


@pytest.mark.parametrize("kind", ["gaussian", "anisotropic", "knn"])
def test_adjacency_spectral_entropy_matches_reference_on_continuous_data(x64, rng, one_blas_thread, kind):
    x = rng.normal(size=(150, 6)) * 4.0
    for knn, sigma in ((10, 10.0), (4, 5.0)):
        expected = dse_dsmi.adjacency_spectral_entropy(x, gaussian_kernel_sigma=sigma, knn=knn, **REF_KIND[kind])
        assert abs(float(ase_jit(x, kind=kind, knn=knn, sigma=sigma)) - expected) < 1e-6


@pytest.mark.parametrize("kind", ["gaussian", "anisotropic", "knn"])
def test_adjacency_spectral_entropy_matches_reference_on_digits(x64, one_blas_thread, kind):
    # Pixel data has many exactly tied distances: the kNN graph must break ties
    # like the reference (r_i included), which needs exact squared distances.
    # Random subsets of rows and k in 4..12 give kNN matrices with many
    # defective zero eigenvalues.
    x_all = digits(slice(None))
    rng = np.random.default_rng(3)
    subsets = [
        np.arange(600, 800),
        rng.choice(len(x_all), 327, replace=False),
        rng.choice(len(x_all), 372, replace=False),
    ]
    for rows, knn in zip(subsets, (10, 6, 4)):
        x = x_all[rows]
        expected = dse_dsmi.adjacency_spectral_entropy(x, knn=knn, **REF_KIND[kind])
        assert abs(float(ase_jit(x, kind=kind, knn=knn)) - expected) < 1e-6


def test_knn_adjacency_ties_include_every_equal_distance(x64):
    from jaxdse.baselines.variants import knn_adjacency

    # Point 0 has three neighbours at distance 1: with knn = 2 (self + 1) all tie.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [5.0, 5.0]])
    A = np.asarray(knn_adjacency(jnp.asarray(x), 2))
    assert A[0].tolist() == [1, 1, 1, 1, 0]
    assert np.all(np.diag(A) == 1)


@pytest.mark.parametrize("fn", ["entries", "knn", "gaussian", "anisotropic"])
def test_mask_equals_slice_and_vmap(x64, rng, fn):
    def call(x, mask=None):
        if fn == "entries":
            return matrix_entry_entropy(x, sigma=2.0, mask=mask)
        return adjacency_spectral_entropy(x, kind=fn, knn=4, sigma=2.0, mask=mask)

    x = jnp.asarray(rng.normal(size=(30, 3)))
    masks = jnp.asarray(rng.uniform(size=(2, 30)) < 0.6)
    batched = jax.jit(jax.vmap(call, in_axes=(None, 0)))(x, masks)
    # A masked kNN matrix is another (padded) defective matrix: its zero
    # eigenvalues carry other rounding noise (see one_blas_thread).
    tol = 1e-4 if fn == "knn" else 1e-8
    for i in range(2):
        sliced = float(call(x[np.asarray(masks[i])]))
        assert float(batched[i]) == pytest.approx(sliced, abs=tol)
    assert float(call(x)) != pytest.approx(float(call(x[np.asarray(masks[0])])), abs=1e-3)


def test_bounds(rng):
    x = jnp.asarray(rng.normal(size=(40, 3)), jnp.float32)
    assert 0.0 <= float(mee_jit(x, sigma=1.0)) <= 2 * np.log2(40) + 1e-4
    for kind in ("knn", "gaussian", "anisotropic"):
        assert 0.0 <= float(ase_jit(x, kind=kind, sigma=1.0)) <= np.log2(40) + 1e-4
    far = jnp.arange(16.0).reshape(8, 2) * 1000.0
    assert float(mee_jit(far)) == pytest.approx(3.0, abs=1e-5)
    assert float(ase_jit(far, kind="knn", knn=1)) == pytest.approx(3.0, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kind="laplacian"), ValueError, "kind"),
        (dict(kind="knn", knn=0), ValueError, "knn"),
        (dict(kind="knn", knn=11), ValueError, "knn"),
        (dict(kind="knn", knn=2.0), TypeError, "knn"),
        (dict(sigma=-1.0), ValueError, "sigma"),
        (dict(base=0.0), ValueError, "base"),
        (dict(mask=np.ones(3, bool)), ValueError, "mask"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        adjacency_spectral_entropy(np.zeros((10, 2)), **kwargs)


def test_bad_arguments_matrix_entry():
    with pytest.raises(ValueError, match="sigma"):
        matrix_entry_entropy(np.zeros((10, 2)), sigma=0.0)
    with pytest.raises(ValueError, match="x"):
        matrix_entry_entropy(np.zeros((10,)))

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdse.baselines import cse
from jaxdse.data import load_digits

dse_dsmi = pytest.importorskip("dse_dsmi")

# Compiled once per shape: much faster than op-by-op dispatch for the many
# shapes below. The eager path is covered by the tests that call cse directly.
cse_jit = jax.jit(cse, static_argnames=("num_bins_per_dim",))


def reference_cse(x, bins):
    return dse_dsmi.diffusion_spectral_entropy(
        np.asarray(x, np.float64), classic_shannon_entropy=True, num_bins_per_dim=bins
    )


def direct_cse(x, bins):
    """Plain numpy: scale, digitize with the reference's edges, count with np.unique."""
    x = np.asarray(x, np.float64)
    span = x.max(0) - x.min(0)
    scaled = np.where(span > 0, (x - x.min(0)) / np.where(span > 0, span, 1.0), 0.0)
    codes = np.digitize(scaled, np.linspace(0, 1, bins + 1)[:-1])
    counts = np.unique(codes, axis=0, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("bins", [2, 3, 5])
def test_matches_reference_on_digits(x64, bins):
    x, _ = load_digits(dtype=np.float64)  # has constant (always-zero) pixel columns
    with np.errstate(invalid="ignore"):
        expected = reference_cse(x, bins)
    assert abs(float(cse_jit(x, num_bins_per_dim=bins)) - expected) < 1e-9


@pytest.mark.parametrize("bins, d", [(2, 3), (2, 100), (4, 40)])  # 100 and 40 need several packed words
def test_matches_reference_on_random_data(x64, rng, bins, d):
    x = rng.normal(size=(300, d)) * rng.uniform(0.1, 10, size=d)
    assert abs(float(cse_jit(x, num_bins_per_dim=bins)) - reference_cse(x, bins)) < 1e-9


@pytest.mark.parametrize("bins", [2, 3, 6])
def test_values_on_bin_edges(x64, rng, bins):
    # Integers 0..6 scale to k/6 and hit the edges j/bins for several bins.
    x = rng.integers(0, 7, size=(400, 4)).astype(np.float64)
    x[0] = 0.0
    x[1] = 6.0
    expected = reference_cse(x, bins)
    assert abs(float(cse_jit(x, num_bins_per_dim=bins)) - expected) < 1e-9
    assert abs(direct_cse(x, bins) - expected) < 1e-9
    # An edge value goes to the upper bin: {0, 1} with 2 bins over [0, 2] splits 0 | 1, 2.
    y = np.array([[0.0], [1.0], [2.0], [2.0]])
    assert float(cse(y)) == pytest.approx(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)), abs=1e-12)


def test_constant_column_goes_to_one_bin(x64, rng):
    x = rng.normal(size=(200, 4))
    with_const = np.insert(x, 2, 7.5, axis=1)
    got = float(cse_jit(with_const, num_bins_per_dim=3))
    assert np.isfinite(got)
    assert got == pytest.approx(float(cse_jit(x, num_bins_per_dim=3)), abs=1e-12)
    # The reference scales that column to 0/0 = NaN; all NaNs land in one bin,
    # so its value is the same, with a runtime warning.
    with pytest.warns(RuntimeWarning):
        ref = reference_cse(with_const, 3)
    assert abs(got - ref) < 1e-9
    assert float(cse_jit(np.full((10, 3), 2.0))) == 0.0


def test_bounds_and_saturation_in_high_dimension(rng):
    n = 128
    x = rng.uniform(size=(n, 200)).astype(np.float32)
    h = float(cse(x))
    assert h == pytest.approx(np.log2(n), abs=1e-4)  # every row alone in its cell
    low = float(cse_jit(x[:, :2]))
    assert 0.0 <= low <= 2.0 + 1e-6  # at most 2^2 cells
    assert float(cse_jit(x, num_bins_per_dim=1)) == 0.0
    assert float(cse_jit(x, base=np.e)) == pytest.approx(h * np.log(2), rel=1e-5)


def test_float32_equals_float64_on_integer_data(rng):
    x = rng.integers(0, 5, size=(300, 6)).astype(np.float32)
    h32 = float(cse_jit(x, num_bins_per_dim=3))
    assert cse(x).dtype == jnp.float32
    with jax.enable_x64(True):
        h64 = float(cse_jit(x.astype(np.float64), num_bins_per_dim=3))
    assert h32 == pytest.approx(h64, abs=1e-5)


def test_mask_equals_slice_jit_and_vmap(rng):
    x = rng.integers(0, 4, size=(40, 5)).astype(np.float32)
    x[5] = 100.0  # an outlier that only matters if the masked rows leak into min-max
    masks = rng.uniform(size=(3, 40)) < 0.5
    masks[:, 5] = False
    jitted = jax.jit(cse, static_argnames="num_bins_per_dim")
    batched = jax.vmap(lambda m: cse(x, num_bins_per_dim=3, mask=m))(jnp.asarray(masks))
    for i, m in enumerate(masks):
        sliced = float(cse_jit(x[m], num_bins_per_dim=3))
        assert float(cse(x, num_bins_per_dim=3, mask=m)) == pytest.approx(sliced, abs=1e-5)
        assert float(jitted(x, num_bins_per_dim=3, mask=jnp.asarray(m))) == pytest.approx(sliced, abs=1e-5)
        assert float(batched[i]) == pytest.approx(sliced, abs=1e-5)
    # The outlier changes the binning when kept, so the check above is not vacuous.
    keep = masks[0].copy()
    keep[5] = True
    assert float(cse_jit(x, num_bins_per_dim=3, mask=jnp.asarray(keep))) != pytest.approx(
        float(cse_jit(x[masks[0]], num_bins_per_dim=3))
    )


def test_row_permutation_invariance(rng):
    x = rng.integers(0, 3, size=(100, 8)).astype(np.float32)
    perm = rng.permutation(100)
    assert float(cse_jit(x)) == pytest.approx(float(cse_jit(x[perm])), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_bins_per_dim=0), ValueError, "num_bins_per_dim"),
        (dict(num_bins_per_dim=2.5), TypeError, "num_bins_per_dim"),
        (dict(num_bins_per_dim=True), TypeError, "num_bins_per_dim"),
        (dict(base=1.0), ValueError, "base"),
        (dict(mask=np.ones(5, bool)), ValueError, "mask"),
        (dict(mask=np.ones(10, int)), TypeError, "mask"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    x = np.zeros((10, 2))
    with pytest.raises(error, match=match):
        cse(x, **kwargs)


def test_bad_points():
    with pytest.raises(ValueError, match="x"):
        cse(np.zeros(10))
    with pytest.raises(ValueError, match="non-finite"):
        cse(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(TypeError, match="x"):
        cse("abc")

"""Sweeps over sigma x t and the knee of a t curve (:mod:`jaxdse.mi.sweep`)."""

import jax
import numpy as np
import pytest

import jaxdse
from jaxdse.mi import sweep as sweep_module
from jaxdse.mi.sweep import knee, sweep

N = 24


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    y = np.arange(N) % 3
    x = (rng.normal(size=(N, 3)) + 3.0 * y[:, None]).astype(np.float32)
    return x, y


def test_grid_equals_single_calls(data):
    x, y = data
    sigmas, ts = np.array([1.0, 2.5, 6.0]), np.array([0.5, 1.0, 4.0])
    key = jax.random.key(3)
    result = sweep(x, sigmas, ts, labels=y * 10 + 7, key=key)  # any integer labels
    assert result.dse.shape == result.dsmi.shape == (3, 3)
    for i, s in enumerate(sigmas):
        for j, t in enumerate(ts):
            assert float(result.dse[i, j]) == pytest.approx(float(jaxdse.dse(x, sigma=s, t=t)), abs=1e-4)
            expected = float(jaxdse.dsmi(x, y, key=key, sigma=s, t=t))
            assert float(result.dsmi[i, j]) == pytest.approx(expected, abs=1e-4)


def test_without_labels_only_dse(data):
    x, _ = data
    result = sweep(x, [2.0], [1.0, 2.0])
    assert result.dsmi is None and result.dse.shape == (1, 2)


def test_a_new_grid_of_the_same_size_does_not_compile_again(data):
    x, y = data
    key = jax.random.key(0)
    sweep(x, [1.0, 2.0], [1.0, 3.0], labels=y, key=key)
    before = (sweep_module._dse_grid._cache_size(), sweep_module._both_grids._cache_size())
    sweep(x, [1.5, 2.5], [0.7, 9.0], labels=y, key=key)
    sweep(x, [1.5, 2.5], [0.7, 9.0])
    sweep(x, [1.1, 2.2], [0.3, 2.0])
    after = (sweep_module._dse_grid._cache_size(), sweep_module._both_grids._cache_size())
    assert after[1] == before[1]
    assert after[0] <= before[0] + 1  # the DSE-only call compiles once, for both grids


def test_batches_of_sigmas_equal_all_at_once(data):
    x, _ = data
    whole = sweep(x, [1.0, 2.0, 3.0], [1.0, 2.0]).dse
    jaxdse.set_memory_budget(sweep_module.dense_bytes(N, np.float32) + 1)  # one sigma's dense arrays at a time
    try:
        batched = sweep(x, [1.0, 2.0, 3.0], [1.0, 2.0]).dse
    finally:
        jaxdse.set_memory_budget(None)  # the default again
    np.testing.assert_allclose(batched, whole, atol=1e-5)


@pytest.mark.parametrize("sigmas", [[1.0, 0.0], [np.nan], [-1.0], []])
def test_sigma_zero_or_invalid_is_refused(data, sigmas):
    x, _ = data
    with pytest.raises(ValueError, match="sigmas"):
        sweep(x, sigmas, [1.0])


@pytest.mark.parametrize("sigmas", [("median",), ["median", 1.0], "median", np.array(["1"]), None])
def test_sigmas_that_are_not_numbers_are_refused(data, sigmas):
    x, _ = data
    with pytest.raises(TypeError, match="sigmas must be a non-empty 1-D list of numbers"):
        sweep(x, sigmas, [1.0])
    with pytest.raises(TypeError, match="ts must be a non-empty 1-D list of numbers"):
        sweep(x, [1.0], ["1"])


def test_labels_are_checked(data):
    x, y = data
    with pytest.raises(ValueError, match="key"):
        sweep(x, [1.0], [1.0], labels=y)
    with pytest.raises(ValueError, match="labels"):
        sweep(x, [1.0], [1.0], labels=y[:-1], key=jax.random.key(0))


def test_dsmi_options_as_in_dsmi(data):
    x, y = data
    plugin = sweep(x, [2.0], [1.0], labels=y, estimator="plugin", batch_size=1).dsmi
    assert float(plugin[0, 0]) == pytest.approx(float(jaxdse.dsmi(x, y, sigma=2.0, estimator="plugin")), abs=1e-4)
    three = sweep(x, [2.0], [1.0], labels=y, key=0, num_repetitions=3).dsmi
    assert float(three[0, 0]) == pytest.approx(float(jaxdse.dsmi(x, y, key=0, sigma=2.0, num_repetitions=3)), abs=1e-4)
    with pytest.raises(TypeError, match="unknown argument"):
        sweep(x, [1.0], [1.0], labels=y, key=0, repetitions=3)
    with pytest.raises(ValueError, match="num_classes"):
        sweep(x, [1.0], [1.0], labels=y, key=0, num_classes=4)


def test_knee_of_a_bending_curve():
    ts = 2.0 ** np.arange(8)
    values = 1.0 + 4.0 * np.exp(-ts / 2.0)  # falls quickly, then flat
    k = knee(ts, values)
    assert k in ts and 1.0 <= k <= 8.0


def test_straight_curve_has_no_knee_and_flat_curve_takes_the_first_t():
    ts = 2.0 ** np.arange(8)
    assert np.isnan(knee(ts, np.linspace(5.0, 1.0, 8)))  # straight in log t: no bend
    # A curve that does not depend on t (or under the flatness threshold): any t
    # gives the same entropy, so the smallest is chosen.
    assert knee(ts, np.full(8, 2.0)) == 1.0
    assert knee(ts, 5.0 - 0.001 * np.arange(8)) == 1.0


def test_knee_checks_its_input():
    with pytest.raises(ValueError, match="increasing"):
        knee([1.0, 3.0, 2.0], [3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        knee([1.0, 2.0], [1.0, 2.0])


def test_knee_on_a_real_dse_curve(data):
    x, _ = data
    ts = 2.0 ** np.arange(-2, 7)
    curve = np.asarray(sweep(x, [2.0], ts).dse[0])
    k = knee(ts, curve)
    assert np.isnan(k) or k in ts


def test_under_jit_with_traced_grids_compiles_once(data):
    x, y = data
    traces = []

    @jax.jit
    def grid(x, sigmas, ts, key):
        traces.append(1)
        return sweep(x, sigmas, ts, labels=y, key=key)

    key = jax.random.key(2)
    first = grid(x, np.array([1.0, 2.0]), np.array([1.0, 3.0]), key)
    again = grid(x, np.array([1.5, 2.5]), np.array([0.5, 2.0]), key)
    assert len(traces) == 1 and grid._cache_size() == 1
    direct = sweep(x, [1.5, 2.5], [0.5, 2.0], labels=y, key=key)
    np.testing.assert_allclose(again.dse, direct.dse, atol=1e-5)
    np.testing.assert_allclose(again.dsmi, direct.dsmi, atol=1e-5)
    assert first.dse.shape == (2, 2)

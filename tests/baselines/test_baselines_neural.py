import jax
import numpy as np
import pytest

from jaxdse.baselines import mine

TRUE_BITS = -0.5 * np.log2(1 - 0.8**2)  # 0.737 bits


@pytest.fixture(scope="module")
def gaussian_pair():
    rng = np.random.default_rng(3)
    x = rng.normal(size=5000)
    return x, 0.8 * x + 0.6 * rng.normal(size=5000)


@pytest.fixture(scope="module")
def default_run(gaussian_pair):
    x, y = gaussian_pair
    return mine(x, y, key=jax.random.key(0))


def test_defaults_reach_the_true_value(default_run):
    # The target: within 15% of the truth with default settings.
    assert abs(float(default_run.value) - TRUE_BITS) < 0.15 * TRUE_BITS


def test_history_shows_convergence(default_run):
    train, held_out = np.asarray(default_run.history.train_bits), np.asarray(default_run.history.eval_bits)
    assert train.shape == held_out.shape == (100,)
    assert np.all(np.isfinite(held_out))
    assert held_out[:3].mean() < held_out[-10:].mean()  # it learned something
    assert float(default_run.value) == pytest.approx(held_out[-10:].mean(), abs=1e-6)


def test_deterministic_for_a_key_and_key_matters(gaussian_pair, default_run):
    x, y = gaussian_pair
    again = mine(x, y, key=jax.random.key(0))
    assert float(again.value) == float(default_run.value)
    other = mine(x, y, key=jax.random.key(1))
    assert float(other.value) != float(default_run.value)


def test_independent_variables_give_about_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = rng.normal(size=(2000, 1))
    result = mine(x, y, key=jax.random.key(0), epochs=20, final_epochs=5)
    assert abs(float(result.value)) < 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(key=None), TypeError, "key"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=100), ValueError, "batch_size"),
        (dict(epochs=2.5), TypeError, "epochs"),
        (dict(final_epochs=50), ValueError, "final_epochs"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(moving_average_rate=1.5), ValueError, "moving_average_rate"),
        (dict(eval_fraction=1.0), ValueError, "eval_fraction"),
        (dict(hidden=(100, 0)), ValueError, "hidden"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    settings = dict(key=jax.random.key(0), epochs=10, batch_size=8)
    settings.update(kwargs)
    with pytest.raises(error, match=match):
        mine(np.zeros((100, 2)), np.zeros(100), **settings)


def test_bad_samples():
    with pytest.raises(ValueError, match="same number of rows"):
        mine(np.zeros((100, 2)), np.zeros(99), key=jax.random.key(0))
    with pytest.raises(ValueError, match="non-finite"):
        mine(np.full((100, 1), np.nan), np.zeros(100), key=jax.random.key(0))

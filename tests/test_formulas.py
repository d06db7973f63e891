"""The formulas themselves, at fixed small inputs, against direct float64 numpy computations.

Cheap and deterministic: every setting away from its default (alpha, base, t),
a masked subset, and DSMI's weights and terms, each checked against the numbers
the formula gives. The property tests in ``test_contracts.py`` draw inputs; these
pin the values.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from tests.test_contracts import np_dse, np_dsmi_plugin

X = np.random.default_rng(7).normal(size=(24, 3))
Y = np.arange(24) % 3


@pytest.mark.parametrize(
    "sigma,t,alpha,base",
    [(1.0, 1.0, 0.0, 2.0), (2.0, 3.0, 0.5, math.e), (0.7, 0.5, 1.0, 10.0), (1.5, 2.0, 0.25, 3.0)],
)
def test_dse_equals_the_formula(sigma, t, alpha, base):
    expected = np_dse(X, sigma, t, alpha, base)
    value = float(jaxdse.dse(X.astype(np.float32), sigma=sigma, t=t, alpha=alpha, base=base))
    assert value == pytest.approx(expected, abs=2e-4)


def test_masked_dse_equals_dse_of_the_kept_rows():
    keep = np.arange(24) % 4 != 0
    f = jax.jit(lambda x, m: jaxdse.dse(x, sigma=1.2, t=2.0, alpha=0.5, mask=m))
    expected = np_dse(X[keep], 1.2, 2.0, 0.5, 2.0)
    assert float(f(X.astype(np.float32), keep)) == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize("alpha,base", [(0.0, 2.0), (0.5, math.e)])
def test_plugin_dsmi_equals_the_formula(alpha, base):
    expected = np_dsmi_plugin(X, Y, 1.3, 2.0, alpha, base)
    value = float(jaxdse.dsmi(X.astype(np.float32), Y, sigma=1.3, t=2.0, alpha=alpha, base=base, estimator="plugin"))
    assert value == pytest.approx(expected, abs=5e-4)


def test_subsample_dsmi_is_the_weighted_mean_comparison_minus_the_class():
    terms = jaxdse.dsmi_terms(X.astype(np.float32), Y, sigma=1.3, num_repetitions=3, key=0)
    conditional = [np_dse(X[Y == c], 1.3, 1.0, 0.0, 2.0) for c in range(3)]
    np.testing.assert_allclose(terms.conditional_entropy, conditional, atol=2e-4)
    expected = np.sum(
        np.bincount(Y) / 24 * (np.mean(np.asarray(terms.comparison_entropy, np.float64), 1) - conditional)
    )
    assert float(terms.value) == pytest.approx(expected, abs=5e-4)


def test_values_below_the_smallest_normal_count_as_zero():
    # At small t, |lambda|^t lifts even 1e-40 to about 0.4: a value below the
    # smallest normal float is rounding, not spectrum, and must weigh nothing.
    lam = jnp.array([1.0, 0.5, 1e-40], jnp.float32)
    t = 0.01
    p = np.array([1.0, 0.5]) ** t
    expected = float(-np.sum(p / p.sum() * np.log2(p / p.sum())))
    assert float(jaxdse.spectral_entropy(lam, t=t)) == pytest.approx(expected, abs=1e-5)


def test_masked_dse_at_small_t_counts_dropped_rows_as_exact_zeros():
    # At t = 0.2 a rounding-level eigenvalue (1e-8) would weigh 0.025 against
    # 1 for the top one: every eigenvalue the mask removes must be an exact 0.
    keep = np.arange(24) % 3 != 0
    expected = np_dse(X[keep], 2.0, 0.2, 0.0, 2.0)
    value = float(jaxdse.dse(X.astype(np.float32), sigma=2.0, t=0.2, mask=keep))
    assert value == pytest.approx(expected, abs=2e-3)


def test_a_single_point_has_no_entropy():
    # One kept row: an error eagerly, NaN under jit; never the 0.0 the formula would give.
    keep = np.arange(24) == 5
    with pytest.raises(ValueError, match="mask"):
        jaxdse.dse(X, sigma=1.0, mask=keep)
    assert np.isnan(float(jax.jit(lambda m: jaxdse.dse(X, sigma=1.0, mask=m))(keep)))


@pytest.mark.parametrize("t", [0.0, -1.0, np.inf, np.nan])
def test_t_outside_the_positive_reals_gives_nan_under_jit(t):
    # t = 0 would give log2 of the number of nonzero eigenvalues, t < 0 a number too.
    f = jax.jit(lambda t: jaxdse.spectral_entropy(jnp.asarray([1.0, 0.5, 0.25], jnp.float32), t=t))
    assert np.isnan(float(f(t)))
    g = jax.jit(lambda t: jaxdse.dse(X, sigma=1.0, t=t))
    assert np.isnan(float(g(t)))


@pytest.mark.parametrize("estimator,solver", [("plugin", jaxdse.SLQ(num_probes=4)), ("subsample", None)])
def test_one_class_carries_exactly_no_information(estimator, solver):
    # The class is the whole set: its term is skipped, not H(Z) minus a second
    # estimate of H(Z) (which the stochastic solver would make a nonzero number).
    r = jaxdse.dsmi_terms(X, np.zeros(24, int), sigma=1.3, estimator=estimator, key=0, solver=solver)
    assert float(r.value) == 0.0 and float(r.stderr) == 0.0


def test_median_rule_is_half_the_median_squared_distance():
    iu = np.triu_indices(len(X), 1)
    sigma = math.sqrt(np.median(((X[:, None] - X[None]) ** 2).sum(-1)[iu]) / 2.0)
    expected = np_dse(X, sigma, 1.0, 0.0, 2.0)
    assert float(jaxdse.dse(X.astype(np.float32), sigma="median")) == pytest.approx(expected, abs=2e-4)

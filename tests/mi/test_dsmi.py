import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse
from jaxdse import cluster_reference, dse, dsmi, dsmi_terms
from jaxdse.mi.clustering import bin_reference
from jaxdse.mi.engine import pad_size
from tests.conftest import blobs

KEY = jax.random.PRNGKey(0)


def test_plugin_equals_loop_over_slices(rng, x64):
    z, y = blobs(rng, n=45, d=4, k=3, sep=3.0)
    y = y[rng.permutation(45)][:45]
    y[:4] = 3  # an unbalanced fourth class
    kwargs = dict(sigma=1.7, t=2.0, alpha=0.3)
    expected = float(dse(z, **kwargs))
    for c in np.unique(y):
        expected -= np.mean(y == c) * float(dse(z[y == c], **kwargs))
    got = dsmi_terms(z, y, estimator="plugin", **kwargs)
    assert float(got.value) == pytest.approx(expected, abs=1e-5)
    assert float(jnp.sum(got.per_class)) == pytest.approx(expected, abs=1e-9)
    np.testing.assert_array_equal(np.asarray(got.class_sizes), np.bincount(y))


def test_subsample_terms_match_their_definition(rng, x64):
    z, y = blobs(rng, n=40, d=3, k=4, sep=3.0)
    terms = dsmi_terms(z, y, key=KEY, sigma=1.5, num_repetitions=3)
    assert terms.comparison_entropy.shape == (4, 3)
    manual = np.sum(np.bincount(y) / 40 * (np.mean(terms.comparison_entropy, 1) - terms.conditional_entropy))
    assert float(terms.value) == pytest.approx(float(manual), abs=1e-12)
    for c in range(4):
        assert float(terms.conditional_entropy[c]) == pytest.approx(float(dse(z[y == c], sigma=1.5)), abs=1e-9)
    # Comparison subsets are real subsets of size n_c: their entropy is a DSE
    # of 10 points, bounded by log2 10.
    assert np.all(np.asarray(terms.comparison_entropy) <= np.log2(10) + 1e-9)


def test_deterministic_for_a_key_and_varies_with_it(rng):
    z, y = blobs(rng, n=60, d=3, k=3, sep=2.0)
    a = float(dsmi(z, y, key=KEY, sigma=1.0))
    assert float(dsmi(z, y, key=KEY, sigma=1.0)) == a
    assert float(dsmi(z, y, key=jax.random.PRNGKey(7), sigma=1.0)) != a


def test_single_class_is_exactly_zero(rng):
    z = rng.normal(size=(30, 3))
    assert float(dsmi(z, np.zeros(30, int), key=KEY, sigma=1.0)) == 0.0
    assert float(dsmi(z, np.full(30, 5), estimator="plugin", sigma=1.0)) == 0.0


def test_single_member_class_is_allowed(rng):
    z, y = blobs(rng, n=31, d=3, k=3)
    y[0] = 9  # a class of one
    terms = dsmi_terms(z, y, key=KEY, sigma=2.0)
    assert np.isfinite(float(terms.value))
    one = int(np.argmin(np.asarray(terms.class_sizes)))
    assert int(terms.class_sizes[one]) == 1
    assert float(terms.conditional_entropy[one]) == 0.0
    assert np.all(np.asarray(terms.comparison_entropy[one]) == 0.0)


def test_any_integer_labels_are_remapped(rng):
    z, y = blobs(rng, n=36, d=3, k=3)
    a = float(dsmi(z, y, key=KEY, sigma=1.0))
    assert float(dsmi(z, (y * 17 - 5).reshape(-1, 1), key=KEY, sigma=1.0)) == pytest.approx(a, abs=1e-6)


def test_informative_labels_beat_shuffled_and_corruption_decreases(rng):
    z, y = blobs(rng, n=120, d=5, k=4, sep=4.0)
    values = []
    for frac in (0.0, 0.3, 0.6, 1.0):
        yc = y.copy()
        r = np.random.default_rng(1)
        idx = r.choice(120, int(frac * 120), replace=False)
        yc[idx] = r.integers(0, 4, size=len(idx))
        values.append(np.mean([float(dsmi(z, yc, key=jax.random.PRNGKey(s), sigma=2.0)) for s in range(3)]))
    assert values[0] > 0.5
    assert all(a > b for a, b in zip(values, values[1:]))
    assert abs(values[-1]) < 0.15


def test_shuffled_digits_labels_give_about_zero():
    from jaxdse.data import load_digits

    x, y = load_digits()
    shuffled = np.random.default_rng(0).permutation(y)
    values = jax.vmap(lambda k: dsmi(x, shuffled, key=k, num_classes=10, max_class_size=pad_size(183, 1797)))(
        jax.random.split(KEY, 4)
    )
    assert abs(float(jnp.mean(values))) <= 0.05
    assert float(dsmi(x, y, key=KEY)) > 0.2


def test_continuous_scalar_reference_is_binned(rng):
    y = np.array([0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 0.3])
    # As np.digitize in float64: the edge linspace(0, 1, 11)[3] is 0.30000000000000004.
    np.testing.assert_array_equal(np.asarray(bin_reference(y, 10)), [0, 0, 1, 5, 9, 9, 9, 2])
    edges = np.linspace(0, 1, 11)[:-1]
    r = rng.uniform(-3, 5, size=500)
    expected = np.digitize((r - r.min()) / (r.max() - r.min()), edges) - 1
    np.testing.assert_array_equal(np.asarray(bin_reference(r, 10)), expected)
    z = rng.normal(size=(40, 2))
    cont = rng.normal(size=40)
    a = float(dsmi(z, cont, key=KEY, sigma=1.0, num_clusters=4))
    b = float(dsmi(z, np.asarray(bin_reference(cont, 4)), key=KEY, sigma=1.0))
    assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize("method", ["spectral", "diffusion"])
def test_cluster_reference_recovers_blobs(method):
    from sklearn.metrics import adjusted_rand_score

    x, labels = jaxdse.data.gaussian_blobs(500, 50, 5, spread=1.0, separation=6.0, seed=3)
    found = np.asarray(cluster_reference(x, 5, key=jax.random.PRNGKey(1), method=method))
    assert adjusted_rand_score(labels, found) >= 0.95
    again = np.asarray(cluster_reference(x, 5, key=jax.random.PRNGKey(1), method=method))
    np.testing.assert_array_equal(found, again)


def test_multidimensional_reference_is_clustered(rng):
    z, _ = blobs(rng, n=60, d=3, k=3)
    x_ref = z + 0.01 * rng.normal(size=z.shape)
    clusters = cluster_reference(x_ref, 3)
    a = float(dsmi(z, x_ref, key=KEY, sigma=1.0, num_clusters=3))
    assert a == pytest.approx(float(dsmi(z, clusters, key=KEY, sigma=1.0)), abs=1e-6)


def test_jit_with_static_sizes_and_the_overflow_rule(rng):
    z, y = blobs(rng, n=60, d=3, k=3)
    f = jax.jit(lambda z, y, k: dsmi(z, y, key=k, sigma=1.0, num_classes=3, max_class_size=24))
    eager = float(dsmi(z, y, key=KEY, sigma=1.0, max_class_size=24))
    assert float(f(z, y, KEY)) == pytest.approx(eager, abs=1e-5)
    # A class larger than max_class_size under jit: NaN, not a truncated estimate.
    y_big = y.copy()
    y_big[:30] = 0
    assert np.isnan(float(f(z, y_big, KEY)))
    # More distinct labels than num_classes: NaN too.
    y_many = y.copy()
    y_many[:5] = 7
    assert np.isnan(float(f(z, y_many, KEY)))
    # Eagerly the same situations are errors.
    with pytest.raises(ValueError, match="more than num_classes"):
        dsmi(z, y_many, key=KEY, num_classes=3)


@pytest.mark.parametrize("estimator", ["subsample", "plugin"])
def test_negative_labels_under_jit_equal_eager(rng, estimator):
    z, y = blobs(rng, n=60, d=3, k=3)
    kw = dict(key=KEY, sigma=1.0, estimator=estimator)
    f = jax.jit(lambda z, y: dsmi(z, y, num_classes=3, max_class_size=24, **kw))
    eager = float(dsmi(z, y - 1, **kw))  # classes -1, 0, 1
    assert eager == pytest.approx(float(dsmi(z, y, **kw)), abs=1e-6) and eager > 0.1
    assert float(f(z, y - 1)) == pytest.approx(eager, abs=1e-5)
    assert float(f(z, y * 1000 - 5)) == float(f(z, y))
    assert float(f(z, -y)) == pytest.approx(float(dsmi(z, -y, **kw)), abs=1e-5)


def test_under_jit_sizes_must_be_given(rng):
    z, y = blobs(rng, n=20, d=2, k=2)
    with pytest.raises(ValueError, match="num_classes must be given"):
        jax.jit(lambda y: dsmi(z, y, key=KEY))(y)
    with pytest.raises(ValueError, match="max_class_size must be given"):
        jax.jit(lambda y: dsmi(z, y, key=KEY, num_classes=2))(y)


def test_vmap_over_sigma_compiles_once(rng):
    z, y = blobs(rng, n=40, d=3, k=2)
    traces = []

    def f(sigma):
        traces.append(1)
        return dsmi(z, y, key=KEY, sigma=sigma)

    sigmas = jnp.array([0.5, 1.0, 2.0, 4.0])
    swept = jax.jit(jax.vmap(f))(sigmas)
    assert len(traces) == 1
    np.testing.assert_allclose(swept, [float(dsmi(z, y, key=KEY, sigma=float(s))) for s in sigmas], atol=1e-5)


def test_grad_of_plugin_is_finite(rng, x64):
    z, y = blobs(rng, n=24, d=3, k=3, sep=2.0)
    g = jax.grad(lambda z: dsmi(z, y, sigma=1.0, estimator="plugin"))(z)
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
    u = np.random.default_rng(1).normal(size=z.shape)
    eps = 1e-6

    def f(z):
        return float(dsmi(z, y, sigma=1.0, estimator="plugin"))

    assert float(np.sum(np.asarray(g) * u)) == pytest.approx((f(z + eps * u) - f(z - eps * u)) / (2 * eps), rel=1e-5)


def test_grad_of_subsample_matches_finite_differences(rng, x64):
    # The random subsets depend on the key only, so the estimate is a smooth
    # function of z; its gradient runs through the batches of subsets.
    z, y = blobs(rng, n=24, d=3, k=3, sep=2.0)
    y[:2] = 3  # unequal class sizes: more than one batch of subsets
    f = lambda z: dsmi(z, y, key=KEY, sigma=1.0, num_repetitions=2)  # noqa: E731
    g = np.asarray(jax.grad(f)(z))
    assert np.all(np.isfinite(g)) and np.any(g != 0)
    u = np.random.default_rng(2).normal(size=z.shape)
    eps = 1e-6
    fd = (float(f(z + eps * u)) - float(f(z - eps * u))) / (2 * eps)
    assert float(np.sum(g * u)) == pytest.approx(fd, rel=1e-5)


def test_equal_size_classes_share_their_comparison_subsets(rng, x64):
    z = rng.normal(size=(36, 3))
    y = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 6)
    shared = np.asarray(dsmi_terms(z, y, key=KEY, sigma=1.0, num_repetitions=3).comparison_entropy)
    np.testing.assert_array_equal(shared[1], shared[0])
    np.testing.assert_array_equal(shared[2], shared[0])
    assert np.all(shared[3] != shared[0])  # 6 points, not 10
    assert len(np.unique(shared[0])) == 3  # the repetitions differ
    independent = np.asarray(
        dsmi_terms(z, y, key=KEY, sigma=1.0, num_repetitions=3, comparison="independent").comparison_entropy
    )
    assert len(np.unique(independent[:3])) == 9
    with pytest.raises(ValueError, match="comparison must be one of"):
        dsmi(z, y, key=KEY, comparison="paired")


@pytest.mark.parametrize("comparison", ["shared", "independent"])
def test_batches_and_skipped_subsets_do_not_change_the_result(rng, comparison):
    # Unequal classes and two unused class slots: the default batches skip the
    # unneeded subsets; one batch of everything, or batches of 3, agree.
    z, y = blobs(rng, n=40, d=3, k=4)
    y[:5] = 4
    kw = dict(key=KEY, sigma=1.0, num_repetitions=2, comparison=comparison, max_class_size=16)
    base = dsmi_terms(z, y, **kw)
    for other in (
        dsmi_terms(z, y, batch_size=1000, **kw),
        dsmi_terms(z, y, batch_size=3, **kw),
        dsmi_terms(z, y, num_classes=7, **kw),
    ):
        assert float(other.value) == pytest.approx(float(base.value), abs=1e-5)
        np.testing.assert_allclose(other.conditional_entropy[:5], base.conditional_entropy, atol=1e-5)
        np.testing.assert_allclose(other.comparison_entropy[:5], base.comparison_entropy, atol=1e-5)


@pytest.mark.parametrize("estimator", ["subsample", "plugin"])
def test_array_t_equals_one_call_per_t(rng, estimator):
    z, y = blobs(rng, n=40, d=3, k=4)
    y[:3] = 4
    ts = np.array([[0.5, 1.0, 3.0]])
    kw = dict(key=KEY, sigma=1.5, estimator=estimator, num_repetitions=2)
    terms = dsmi_terms(z, y, t=ts, **kw)
    assert terms.value.shape == (1, 3)
    assert terms.conditional_entropy.shape == (1, 3, 5)
    assert terms.comparison_entropy.shape == (1, 3, 5, 2 if estimator == "subsample" else 0)
    np.testing.assert_allclose(np.sum(terms.per_class, -1), terms.value, atol=1e-5)
    for j, t in enumerate(ts[0]):
        one = dsmi_terms(z, y, t=float(t), **kw)
        assert float(terms.value[0, j]) == pytest.approx(float(one.value), abs=1e-5)
        np.testing.assert_allclose(terms.conditional_entropy[0, j], one.conditional_entropy, atol=1e-5)
        np.testing.assert_allclose(terms.comparison_entropy[0, j], one.comparison_entropy, atol=1e-5)
    # Batches of subsets (and the skipping of unneeded ones) keep the t axis.
    np.testing.assert_allclose(dsmi(z, y, t=ts, batch_size=3, **kw), terms.value, atol=1e-5)
    with pytest.raises(ValueError, match="t must be positive"):
        dsmi(z, y, t=np.array([1.0, -1.0]), **kw)


def test_batched_evaluation_equals_vmap(rng):
    z, y = blobs(rng, n=40, d=3, k=4)
    a = float(dsmi(z, y, key=KEY, sigma=1.0))
    assert float(dsmi(z, y, key=KEY, sigma=1.0, batch_size=7)) == pytest.approx(a, abs=1e-5)


class LogCount:
    """The log of the kept count: a minimal :class:`jaxdse.mi.SubsetEntropy`."""

    def prepare(self, z, params):
        return z

    def subset_bytes(self, m, dtype):
        return m

    def __call__(self, rows, mask, params, key):
        value = jnp.log2(jnp.sum(mask).astype(rows.dtype))
        return jaxdse.Estimate(value, jnp.zeros_like(value))


def test_generic_mutual_information_with_a_custom_entropy(rng):
    # Any hashable subset entropy plugs in; for the log of the kept count the
    # subsample estimator is exactly 0 and the plugin estimator is the entropy
    # of the label distribution.
    z = rng.normal(size=(12, 2))
    y = np.array([0] * 6 + [1] * 3 + [2] * 3)
    got = jaxdse.mutual_information(z, y, entropy=LogCount(), estimator="plugin")
    p = np.array([0.5, 0.25, 0.25])
    assert float(got.value) == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-6)
    assert float(jaxdse.mutual_information(z, y, entropy=LogCount(), key=KEY).value) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, exc, word",
    [
        ((np.zeros(5), np.zeros(5, int)), {}, ValueError, r"z must have shape \[n, d\]"),
        ((np.zeros((5, 2)), np.zeros(4, int)), {}, ValueError, "y has 4 rows but there are n=5 points"),
        ((np.zeros((5, 2)), np.zeros(5)), dict(reference_discrete=True), ValueError, "must be integers"),
        ((np.zeros((1, 2)), np.zeros(1, int)), {}, ValueError, "at least 2 rows"),
        (
            (np.zeros((5, 2)), np.linspace(0, 1, 5)),
            dict(num_clusters=1),
            ValueError,
            "num_clusters must be an integer >= 2",
        ),
        (
            (np.zeros((5, 2)), np.linspace(0, 1, 5)),
            dict(num_clusters=6),
            ValueError,
            "num_clusters must be an integer >= 2",
        ),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(num_repetitions=0), ValueError, "num_repetitions"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(estimator="exact"), ValueError, "estimator must be one of"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(key=None), ValueError, "key is required"),
        ((np.zeros((5, 2)), np.ones(5, complex)), {}, TypeError, "y must have a real numeric or text dtype"),
        ((np.zeros((5, 2)), None), {}, TypeError, "y must be an array"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(max_class_size=9), ValueError, "max_class_size"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(sigma=-1.0), ValueError, "sigma must be positive"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(t=0.0), ValueError, "t must be positive"),
        ((np.zeros((5, 2)), np.zeros(5, int)), dict(solver="svd"), ValueError, "solver must be"),
    ],
)
def test_bad_input(args, kwargs, exc, word):
    kwargs = {"key": KEY, **kwargs}
    with pytest.raises(exc, match=word):
        dsmi(*args, **kwargs)


def test_cluster_reference_bad_input():
    with pytest.raises(ValueError, match="num_clusters"):
        cluster_reference(np.zeros((5, 3)), 9)
    with pytest.raises(ValueError, match="method must be one of"):
        cluster_reference(np.zeros((5, 3)), 2, method="kmeans")
    with pytest.raises(ValueError, match="y has 1 row.s. with non-finite"):
        cluster_reference(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), 2)


def test_mesh_argument_is_checked(rng):
    z, y = blobs(rng, n=20, d=2, k=2)
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        dsmi(z, y, key=KEY, mesh="gpu")
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        dsmi(z, y, key=KEY, mesh=mesh, batch_size=0)
    expected = float(dsmi(z, y, key=KEY, sigma=1.0))
    assert float(dsmi(z, y, key=KEY, mesh=mesh, sigma=1.0)) == pytest.approx(expected, abs=1e-5)
    assert float(dsmi(z, y, key=KEY, mesh=mesh, sigma=1.0, batch_size=2)) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("solver", [jaxdse.Exact(), jaxdse.SLQ(num_probes=4, deflation_rank=4)], ids=["exact", "slq"])
def test_shared_distance_path_equals_per_subset_path(rng, x64, solver):
    # Few large classes: the subsets' distance blocks are gathered from one
    # n x n matrix; the result equals the plain per-subset computation.
    from jaxdse.entropy.diffusion_entropy import DiffusionEntropy
    from jaxdse.mi.engine import MIOptions, Plan, _mutual_information, plan

    z, y = blobs(rng, n=40, d=30, k=2, sep=2.0)
    kw = dict(key=KEY, sigma="median", num_repetitions=3, alpha=0.5, solver=solver)
    terms = dsmi_terms(z, y, **kw)
    labels = jnp.asarray(y, jnp.int32)
    ent = DiffusionEntropy("median", None, solver)
    # The public call takes the shared path here.
    assert plan(ent, labels, 40, z.dtype, MIOptions(num_repetitions=3), 2).share_pairwise
    args = (jnp.asarray(z), labels, KEY, (0.0, 1.0, 0.5, 2.0))
    plans = [Plan(2, 24, 3, False, True, None, None, share) for share in (True, False)]
    shared, separate = (_mutual_information(*args, entropy=ent, plan=p) for p in plans)
    np.testing.assert_allclose(shared.conditional_entropy, separate.conditional_entropy, atol=1e-8)
    np.testing.assert_allclose(shared.comparison_entropy, separate.comparison_entropy, atol=1e-8)
    assert float(terms.value) == pytest.approx(float(shared.value), abs=1e-10)

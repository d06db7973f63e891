"""Peer measures (jaxdse.metrics) and probes (jaxdse.monitor): numpy/scipy/sklearn references, closed forms,
masks, transformations, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxdse import dse
from jaxdse.metrics import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information
from jaxdse.monitor import RepresentationMetrics, knn_accuracy, make_representation_evaluator, ridge_accuracy


def spectrum_points(rng, variances, n):
    """Centred points ``[n, d]`` whose covariance (divided by n) has exactly the given eigenvalues."""
    d = len(variances)
    basis = np.concatenate([np.ones((n, 1)) / math.sqrt(n), rng.normal(size=(n, d))], 1)
    q, _ = np.linalg.qr(basis)
    q = q[:, 1:]  # orthonormal columns orthogonal to the ones vector: centred
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return math.sqrt(n) * q @ np.diag(np.sqrt(variances)) @ rotation.T


# ---------------------------------------------------------------- numpy references


def np_rankme(x):
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return math.exp(-(p * np.log(p)).sum())


def np_covariance_spectrum(x):
    xc = x - x.mean(0)
    return np.sort(np.linalg.eigvalsh(xc.T @ xc / len(x)))[::-1]


def np_renyi(gram, alpha):
    lam = np.clip(scipy.linalg.eigvalsh(gram / np.trace(gram)), 0, None)
    lam = lam / lam.sum()
    if alpha == 1:
        lam = lam[lam > 0]
        return -(lam * np.log2(lam)).sum()
    return math.log2((lam**alpha).sum()) / (1 - alpha)


def np_gauss(x, sigma):
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2))


# ---------------------------------------------------------------- RankMe, participation ratio, alpha-ReQ


def test_rankme_matches_numpy(x64, rng):
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8))
    assert float(rankme(x)) == pytest.approx(np_rankme(x), rel=1e-10)
    assert float(rankme(x, center=True)) == pytest.approx(np_rankme(x - x.mean(0)), rel=1e-10)
    wide = rng.normal(size=(10, 30))  # d > n: the n x n Gram matrix is used
    assert float(rankme(wide)) == pytest.approx(np_rankme(wide), rel=1e-10)


def test_rankme_closed_forms(rng):
    # Exactly isotropic features: all singular values equal, RankMe = d.
    x = spectrum_points(rng, np.ones(12), 200)
    assert float(rankme(x)) == pytest.approx(12.0, rel=1e-4)
    # Isotropic Gaussian features, n >> d: singular values within O(sqrt(d/n)) of each other, RankMe close to d.
    g = rng.normal(size=(20000, 16))
    assert 15.9 < float(rankme(g)) <= 16.0
    # Rank one: 1.
    assert float(rankme(np.outer(rng.normal(size=30), rng.normal(size=5)))) == pytest.approx(1.0, abs=1e-3)


def test_participation_ratio_matches_numpy_and_closed_form(x64, rng):
    x = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    lam = np_covariance_spectrum(x)
    assert float(participation_ratio(x)) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-10)
    wide = rng.normal(size=(8, 20))
    lam = np_covariance_spectrum(wide)
    assert float(participation_ratio(wide)) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-10)
    # Variances 1, 1, 1, 0.5: (3.5)^2 / 3.25.
    x = spectrum_points(rng, [1.0, 1.0, 1.0, 0.5], 50)
    assert float(participation_ratio(x)) == pytest.approx(3.5**2 / 3.25, rel=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_of_an_exact_power_law(x64, rng, alpha):
    k = np.arange(1, 33)
    x = spectrum_points(rng, 3.0 * k ** (-alpha), 100)
    assert float(alpha_req(x)) == pytest.approx(alpha, abs=1e-8)
    assert float(alpha_req(x, fit_range=(4, 20))) == pytest.approx(alpha, abs=1e-8)


def test_alpha_req_matches_numpy_fit(x64, rng):
    x = rng.normal(size=(60, 10)) * (np.arange(1, 11) ** -0.8)
    lam = np_covariance_spectrum(x)
    k = np.arange(1, 11)
    for k_min, k_max in [(1, None), (2, 7)]:
        top = 10 if k_max is None else k_max
        slope = np.polyfit(np.log(k[k_min - 1 : top]), np.log(lam[k_min - 1 : top]), 1)[0]
        assert float(alpha_req(x, fit_range=(k_min, k_max))) == pytest.approx(-slope, rel=1e-8)


def test_alpha_req_of_gaussian_features_with_power_law_covariance(rng):
    k = np.arange(1, 17)
    x = rng.normal(size=(20000, 16)) * np.sqrt(k**-1.5)
    assert float(alpha_req(x)) == pytest.approx(1.5, abs=0.05)


def test_alpha_req_stops_at_the_numerical_rank(x64, rng):
    # Zero directions (dead units) are left out of the fit: the same exponent as without them.
    k = np.arange(1, 9)
    x = spectrum_points(rng, k**-1.2, 40)
    padded = np.concatenate([x, np.zeros((40, 5))], 1)
    assert float(alpha_req(padded)) == pytest.approx(1.2, abs=1e-8)
    assert float(alpha_req(padded, fit_range=(2, 12))) == pytest.approx(1.2, abs=1e-8)
    # Rank one, or a range starting at the rank: fewer than two ranks to fit, NaN.
    assert np.isnan(float(alpha_req(np.outer(rng.normal(size=30), rng.normal(size=5)))))
    assert np.isnan(float(alpha_req(padded, fit_range=(8, None))))


# ---------------------------------------------------------------- Renyi entropy and mutual information


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_renyi_entropy_matches_numpy(x64, rng, alpha):
    x = rng.normal(size=(30, 4))
    assert float(renyi_entropy(x, alpha=alpha, sigma=2.0)) == pytest.approx(np_renyi(np_gauss(x, 2.0), alpha), rel=1e-9)
    # Base e: nats.
    nats = float(renyi_entropy(x, alpha=alpha, sigma=2.0, base=math.e))
    assert nats == pytest.approx(np_renyi(np_gauss(x, 2.0), alpha) * math.log(2), rel=1e-9)


def test_renyi_entropy_closed_forms(x64, rng):
    far = np.eye(16) * 1000.0
    for alpha in (0.5, 1.0, 2.0):
        assert float(renyi_entropy(far, alpha=alpha)) == pytest.approx(4.0, abs=1e-5)  # log2 16
        assert float(renyi_entropy(np.zeros((16, 3)), alpha=alpha)) == pytest.approx(0.0, abs=1e-5)
    # Alpha -> 1 is continuous into von Neumann.
    x = rng.normal(size=(20, 3)).astype(np.float32)
    assert float(renyi_entropy(x, alpha=1.0 + 1e-3, sigma=1.0)) == pytest.approx(
        float(renyi_entropy(x, alpha=1.0, sigma=1.0)), abs=2e-3
    )


def test_renyi_mutual_information_matches_numpy(x64, rng):
    x = rng.normal(size=(30, 4))
    y = rng.integers(3, size=30)
    alpha = 2.0
    a_x = np_gauss(x, 2.0)
    a_y = (y[:, None] == y[None, :]).astype(float)
    expected = np_renyi(a_x, alpha) + np_renyi(a_y, alpha) - np_renyi(a_x / 30 * a_y / 30, alpha)
    assert float(renyi_mutual_information(x, y, alpha=alpha, sigma=2.0)) == pytest.approx(expected, rel=1e-9)
    # Points y with a Gaussian kernel of its own bandwidth.
    v = rng.normal(size=(30, 2))
    a_v = np_gauss(v, 0.7)
    expected = np_renyi(a_x, alpha) + np_renyi(a_v, alpha) - np_renyi(a_x * a_v, alpha)
    assert float(renyi_mutual_information(x, v, alpha=alpha, sigma=2.0, sigma_y=0.7)) == pytest.approx(
        expected, rel=1e-9
    )


def test_renyi_mutual_information_closed_forms(x64, rng):
    far = np.eye(20) * 1000.0
    balanced = np.arange(20) % 4
    for alpha in (0.5, 1.0, 2.0):
        # Far-apart points: I = S(A_y) = log2 C for C balanced classes.
        assert float(renyi_mutual_information(far, balanced, alpha=alpha)) == pytest.approx(2.0, abs=1e-5)
        # One class: the joint is A_x, I = 0.
        x = rng.normal(size=(20, 3))
        assert float(renyi_mutual_information(x, np.zeros(20, int), alpha=alpha, sigma=1.0)) == pytest.approx(
            0.0, abs=1e-5
        )


# ---------------------------------------------------------------- probes


def test_knn_accuracy_matches_sklearn(rng):
    from sklearn.neighbors import KNeighborsClassifier

    centres = rng.normal(scale=2.0, size=(4, 5))
    y_tr, y_te = rng.integers(4, size=120), rng.integers(4, size=60)
    z_tr = centres[y_tr] + rng.normal(size=(120, 5))
    z_te = centres[y_te] + rng.normal(size=(60, 5))
    for k in (1, 5, 9):
        ours = float(knn_accuracy(z_tr, y_tr, z_te, y_te, num_classes=4, k=k))
        theirs = KNeighborsClassifier(n_neighbors=k).fit(z_tr, y_tr).score(z_te, y_te)
        assert ours == pytest.approx(theirs, abs=1e-6)
    assert 0.25 < ours <= 1.0


def test_ridge_accuracy_matches_sklearn(x64, rng):
    from sklearn.linear_model import Ridge

    centres = rng.normal(size=(3, 6))
    y_tr, y_te = rng.integers(3, size=80), rng.integers(3, size=50)
    z_tr = 5.0 * (centres[y_tr] + rng.normal(size=(80, 6)))
    z_te = 5.0 * (centres[y_te] + rng.normal(size=(50, 6)))
    zc = z_tr - z_tr.mean(0)
    for reg in (1e-3, 1.0, 30.0):
        lam = reg * np.trace(zc.T @ zc) / 6
        scores = Ridge(alpha=lam).fit(z_tr, np.eye(3)[y_tr]).predict(z_te)
        expected = np.mean(scores.argmax(1) == y_te)
        assert float(ridge_accuracy(z_tr, y_tr, z_te, y_te, num_classes=3, regularization=reg)) == pytest.approx(
            expected
        )
    # Scale-free: multiplying the features changes nothing.
    a = ridge_accuracy(z_tr, y_tr, z_te, y_te, num_classes=3, regularization=0.3)
    b = ridge_accuracy(z_tr * 1e-3, y_tr, z_te * 1e-3, y_te, num_classes=3, regularization=0.3)
    assert float(a) == float(b)


# ---------------------------------------------------------------- masks, transformations


def _masked_pairs(rng):
    x = rng.normal(size=(25, 4)).astype(np.float32)
    y = rng.integers(3, size=25)
    mask = rng.random(25) < 0.6
    return x, y, mask


def test_masked_call_equals_call_on_kept_rows(rng):
    x, y, mask = _masked_pairs(rng)
    checks = [
        (lambda v, m: rankme(v, mask=m), lambda v: rankme(v)),
        (lambda v, m: rankme(v, mask=m, center=True), lambda v: rankme(v, center=True)),
        (lambda v, m: participation_ratio(v, mask=m), lambda v: participation_ratio(v)),
        (lambda v, m: alpha_req(v, mask=m), lambda v: alpha_req(v)),
        (lambda v, m: renyi_entropy(v, sigma=1.5, mask=m), lambda v: renyi_entropy(v, sigma=1.5)),
    ]
    for masked, plain in checks:
        assert float(masked(x, mask)) == pytest.approx(float(plain(x[mask])), rel=2e-4, abs=2e-5)
    assert float(renyi_mutual_information(x, y, sigma=1.5, mask=mask)) == pytest.approx(
        float(renyi_mutual_information(x[mask], y[mask], sigma=1.5)), rel=2e-4, abs=2e-5
    )
    z_te, y_te = rng.normal(size=(15, 4)), rng.integers(3, size=15)
    test_mask = rng.random(15) < 0.7
    for probe in (knn_accuracy, ridge_accuracy):
        masked = probe(x, y, z_te, y_te, num_classes=3, train_mask=mask, test_mask=test_mask)
        plain = probe(x[mask], y[mask], z_te[test_mask], y_te[test_mask], num_classes=3)
        assert float(masked) == pytest.approx(float(plain), abs=1e-6)


def test_jit_vmap_and_grad(rng):
    x = rng.normal(size=(20, 5)).astype(np.float32)
    y = np.arange(20) % 2
    fns = {
        "rankme": lambda v: rankme(v),
        "participation_ratio": lambda v: participation_ratio(v),
        "alpha_req": lambda v: alpha_req(v),
        "renyi_entropy": lambda v: renyi_entropy(v, sigma=2.0),
        "renyi_mi": lambda v: renyi_mutual_information(v, y, sigma=2.0),
    }
    stack = np.stack([x, 2.0 * x + 1.0, x[::-1]])
    for name, fn in fns.items():
        eager = float(fn(x))
        assert float(jax.jit(fn)(x)) == pytest.approx(eager, rel=1e-5), name
        batched = jax.vmap(fn)(stack)
        assert np.allclose(batched, [float(fn(s)) for s in stack], rtol=1e-5), name
        g = jax.grad(fn)(x)
        assert g.shape == x.shape and np.all(np.isfinite(g)), name
    # The sigma of the Renyi entropy is traced: one compilation for a sweep.
    sweep = jax.vmap(lambda s: renyi_entropy(x, sigma=s))(jnp.array([0.5, 2.0, 8.0]))
    assert np.all(np.diff(np.asarray(sweep)) < 0)  # a wider kernel, a lower entropy


def test_gradients_agree_with_finite_differences(x64, rng):
    x = rng.normal(size=(12, 3))
    direction = rng.normal(size=x.shape)
    for fn in (rankme, participation_ratio, alpha_req, lambda v: renyi_entropy(v, sigma=1.5, alpha=1.5)):
        g = np.asarray(jax.grad(fn)(x))
        eps = 1e-6
        fd = (float(fn(x + eps * direction)) - float(fn(x - eps * direction))) / (2 * eps)
        assert float((g * direction).sum()) == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_invariances(rng):
    x = rng.normal(size=(30, 6)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    perm = rng.permutation(30)
    for fn in (lambda v: rankme(v), participation_ratio, alpha_req, lambda v: renyi_entropy(v, sigma=3.0)):
        base = float(fn(x))
        assert float(fn(x[perm])) == pytest.approx(base, rel=1e-4)
        assert float(fn((x @ q).astype(np.float32))) == pytest.approx(base, rel=1e-3)
    # Scale-free ones.
    for fn in (lambda v: rankme(v), participation_ratio, alpha_req):
        assert float(fn(7.0 * x)) == pytest.approx(float(fn(x)), rel=1e-4)


# ---------------------------------------------------------------- errors and NaN under jit


def test_errors_name_the_argument(rng):
    x = rng.normal(size=(10, 3))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match=r"x must have shape \[n, d\]"):
        rankme(np.zeros(5))
    with pytest.raises(ValueError, match=r"x has 3 row\(s\) with non-finite"):
        participation_ratio(np.where(np.eye(10, 3) > 0, np.nan, x))
    with pytest.raises(ValueError, match="mask must have shape"):
        alpha_req(x, mask=np.ones(4, bool))
    with pytest.raises(ValueError, match="fit_range"):
        alpha_req(x, fit_range=(3, 2))
    with pytest.raises(ValueError, match="fit_range"):
        alpha_req(x, fit_range=(0, None))
    with pytest.raises(ValueError, match="alpha must be positive"):
        renyi_entropy(x, alpha=0.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        renyi_entropy(x, sigma=-1.0)
    with pytest.raises(ValueError, match="y has 9 rows"):
        renyi_mutual_information(x, y[:9])
    with pytest.raises(ValueError, match="sigma_y must be positive"):
        renyi_mutual_information(x, x, sigma_y=0.0)
    with pytest.raises(ValueError, match="k must be an integer"):
        knn_accuracy(x, y, x, y, num_classes=2, k=11)
    with pytest.raises(ValueError, match="y_test must lie in"):
        knn_accuracy(x, y, x, y + 1, num_classes=2)
    with pytest.raises(ValueError, match="y_train must be integer labels"):
        ridge_accuracy(x, y.astype(float), x, y, num_classes=2)
    with pytest.raises(ValueError, match="regularization must be positive"):
        ridge_accuracy(x, y, x, y, num_classes=2, regularization=0.0)
    with pytest.raises(ValueError, match="z_train and z_test"):
        ridge_accuracy(x, y, x[:, :2], y, num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        make_representation_evaluator(num_classes=0, max_class_size=5)
    # Settings that fix shapes are Python integers: anything else is a TypeError.
    with pytest.raises(TypeError, match="k must be an integer, got 2.5"):
        knn_accuracy(x, y, x, y, num_classes=2, k=2.5)
    with pytest.raises(TypeError, match="max_class_size must be an integer, got True"):
        make_representation_evaluator(num_classes=2, max_class_size=True)
    with pytest.raises(TypeError, match="fit_range: k_max must be an integer"):
        alpha_req(x, fit_range=(1, 4.0))


def test_invalid_values_under_jit_give_nan(rng):
    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = np.arange(10) % 2
    bad = x.copy()
    bad[2, 1] = np.nan
    assert np.isnan(float(jax.jit(lambda v: rankme(v))(bad)))
    assert np.isnan(float(jax.jit(participation_ratio)(bad)))
    assert np.isnan(float(jax.jit(alpha_req)(bad)))
    assert np.isnan(float(jax.jit(lambda a: renyi_entropy(x, alpha=a))(-1.0)))
    assert np.isnan(float(jax.jit(lambda s: renyi_entropy(x, sigma=s))(-1.0)))
    assert np.isnan(float(jax.jit(lambda s: renyi_mutual_information(x, y, sigma_y=s))(-2.0)))
    assert np.isnan(float(jax.jit(lambda r: ridge_accuracy(x, y, x, y, num_classes=2, regularization=r))(-1.0)))
    assert np.isnan(float(jax.jit(lambda v: knn_accuracy(v, y, x, y, num_classes=2))(bad)))


# ---------------------------------------------------------------- the evaluator


def test_evaluator_equals_the_separate_measures_and_vmaps(rng):
    centres = rng.normal(scale=3.0, size=(3, 6))
    y = np.arange(36) % 3
    y_tr = np.arange(60) % 3
    population = np.stack([centres[y] * s + rng.normal(size=(36, 6)) for s in (0.0, 0.5, 2.0)]).astype(np.float32)
    train = np.stack([centres[y_tr] * s + rng.normal(size=(60, 6)) for s in (0.0, 0.5, 2.0)]).astype(np.float32)
    evaluate = jax.jit(make_representation_evaluator(num_classes=3, max_class_size=12, sigma=3.0, k=3))
    key = jax.random.key(0)
    batched = jax.vmap(evaluate, (0, None, 0, None, None))(population, y, train, y_tr, key)
    compiled = evaluate._cache_size()
    assert isinstance(batched, RepresentationMetrics) and batched.dse.shape == (3,)
    for i in range(3):
        one = evaluate(population[i], y, train[i], y_tr, key)
        for name in RepresentationMetrics._fields:
            assert float(getattr(batched, name)[i]) == pytest.approx(float(getattr(one, name)), rel=1e-4, abs=1e-5), (
                name
            )
        z = population[i]
        assert float(one.dse) == pytest.approx(float(dse(z, sigma=3.0)), rel=1e-4, abs=1e-5)
        assert float(one.rankme) == pytest.approx(float(rankme(z)), rel=1e-5)
        assert float(one.renyi_mi) == pytest.approx(
            float(renyi_mutual_information(z, y, sigma=3.0)), rel=1e-4, abs=1e-5
        )
        assert float(one.knn_accuracy) == pytest.approx(float(knn_accuracy(train[i], y_tr, z, y, num_classes=3, k=3)))
    # More class structure, better probes and more label information.
    assert batched.knn_accuracy[2] > batched.knn_accuracy[0]
    assert batched.renyi_mi[2] > batched.renyi_mi[0]
    assert evaluate._cache_size() == compiled + 1  # one compilation serves every member

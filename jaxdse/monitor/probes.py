"""Probes, and one evaluator of every representation measure from the same features.

A probe fits a cheap classifier on training features and reports its accuracy
on held-out features: :func:`knn_accuracy` (k nearest neighbours, majority
vote) and :func:`ridge_accuracy` (a linear ridge-regression classifier).
:func:`make_representation_evaluator` returns one pure function that computes,
from the same held-out features, DSE, DSMI, RankMe, the participation ratio,
alpha-ReQ, the matrix-based Renyi entropy and mutual information and both
probes; jit it once and ``vmap`` it over a population of networks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.entropy.estimators import dse
from jaxdse.kernels.points import HIGHEST, sq_distances
from jaxdse.metrics.dimension import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information
from jaxdse.mi.estimators import dsmi
from jaxdse.solvers import _linalg

__all__ = ["RepresentationMetrics", "knn_accuracy", "make_representation_evaluator", "ridge_accuracy"]


def _check_probe_args(z_train, y_train, z_test, y_test, num_classes, train_mask, test_mask):
    z_train = _checks.as_points(z_train, "z_train", min_rows=1)
    z_test = _checks.as_points(z_test, "z_test", min_rows=1)
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(f"z_train and z_test must have the same features, got d={z_train.shape[1]} and {z_test.shape[1]}")
    _checks.check_int(num_classes, "num_classes")
    labels = []
    for name, y, n in (("y_train", y_train, z_train.shape[0]), ("y_test", y_test, z_test.shape[0])):
        dtype = np.dtype(getattr(y, "dtype", None) or np.asarray(y).dtype)
        if np.shape(y) != (n,) or not np.issubdtype(dtype, np.integer):
            raise ValueError(f"{name} must be integer labels of shape [{n}], got {dtype} {tuple(np.shape(y))}")
        if _checks.is_concrete(y):
            arr = np.asarray(y)
            if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
                raise ValueError(f"{name} must lie in 0..num_classes-1={num_classes - 1}, got {arr.min()}..{arr.max()}")
        labels.append(jnp.asarray(y, jnp.int32))
    train_mask = _checks.check_mask(train_mask, z_train.shape[0], "train_mask")
    test_mask = _checks.check_mask(test_mask, z_test.shape[0], "test_mask")
    return z_train, labels[0], z_test, labels[1], train_mask, test_mask


def _accuracy(predicted, y_test, test_mask):
    correct = (predicted == y_test).astype(jnp.result_type(float))
    if test_mask is None:
        return jnp.mean(correct)
    return jnp.sum(jnp.where(test_mask, correct, 0.0)) / jnp.sum(test_mask)


def knn_accuracy(z_train, y_train, z_test, y_test, *, num_classes: int, k: int = 5, train_mask=None, test_mask=None):
    """Held-out accuracy of the k-nearest-neighbour classifier on features.

    Each test row gets the majority label among its ``k`` nearest training rows
    (Euclidean distance; ties in the vote go to the smallest class index), and
    the result is the fraction of test rows whose prediction equals ``y_test``.

    Args:
      z_train: ``[n, d]`` training features; ``y_train``: ``[n]`` integer labels in 0..num_classes-1.
      z_test: ``[m, d]`` held-out features; ``y_test``: ``[m]`` integer labels.
      num_classes: static number of classes.
      k: static number of neighbours, ``1 <= k <=`` the number of kept training rows.
      train_mask, test_mask: optional ``[n]`` / ``[m]`` bool; equal the call on the kept rows.

    Returns:
      Scalar accuracy in [0, 1]; NaN under jit when a kept training or test
      row is not finite, or fewer than ``k`` training rows are kept.

    Raises:
      TypeError/ValueError naming the argument (shapes, dtypes, label range, k).

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[0.0], [0.1], [5.0], [5.1]]); y = jnp.array([0, 0, 1, 1])
    >>> float(knn_accuracy(z, y, jnp.array([[0.2], [4.9]]), jnp.array([0, 1]), num_classes=2, k=1))
    1.0
    """
    z_train, y_train, z_test, y_test, train_mask, test_mask = _check_probe_args(
        z_train, y_train, z_test, y_test, num_classes, train_mask, test_mask
    )
    _checks.check_int(k, "k", maximum=z_train.shape[0])  # at most the training rows
    d2 = sq_distances(z_test, z_train)
    if train_mask is not None:
        d2 = jnp.where(train_mask[None, :], d2, jnp.inf)
    _, nearest = jax.lax.top_k(-d2, k)
    votes = jnp.sum(jax.nn.one_hot(y_train[nearest], num_classes), axis=1)
    accuracy = _accuracy(jnp.argmax(votes, -1), y_test, test_mask)
    enough = True if train_mask is None else jnp.sum(train_mask) >= k
    finite = jnp.all(jnp.isfinite(jnp.where(jnp.isinf(d2), 0.0, d2)))
    return jnp.where(enough & finite, accuracy, jnp.nan)


def ridge_accuracy(
    z_train, y_train, z_test, y_test, *, num_classes: int, regularization=1e-3, train_mask=None, test_mask=None
):
    """Held-out accuracy of a ridge-regression classifier on features.

    Fits ``W = (Z_c^T Z_c + lambda I)^-1 Z_c^T (T - mean T)`` on the centred
    training features ``Z_c`` and one-hot targets ``T``, with
    ``lambda = regularization * tr(Z_c^T Z_c) / d`` (relative to the mean
    feature variance, so the probe does not depend on the features' scale),
    predicts ``argmax((z - mean z) W + mean T)`` on the test rows and returns
    the fraction equal to ``y_test``.

    Args:
      z_train, y_train, z_test, y_test, num_classes, train_mask, test_mask: as
        in :func:`knn_accuracy`.
      regularization: relative ridge strength, > 0 (traced).

    Returns:
      Scalar accuracy in [0, 1]; NaN under jit for a non-positive
      ``regularization`` or non-finite features.

    Raises:
      TypeError/ValueError naming the argument.

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[0.0], [0.1], [5.0], [5.1]]); y = jnp.array([0, 0, 1, 1])
    >>> float(ridge_accuracy(z, y, jnp.array([[0.2], [4.9]]), jnp.array([0, 1]), num_classes=2))
    1.0
    """
    z_train, y_train, z_test, y_test, train_mask, test_mask = _check_probe_args(
        z_train, y_train, z_test, y_test, num_classes, train_mask, test_mask
    )
    regularization = _checks.check_positive(regularization, "regularization")
    n, d = z_train.shape
    w = jnp.ones(n, z_train.dtype) if train_mask is None else train_mask.astype(z_train.dtype)
    m = jnp.sum(w)
    targets = jax.nn.one_hot(y_train, num_classes, dtype=z_train.dtype)
    mean_z = jnp.sum(w[:, None] * z_train, 0) / m
    mean_t = jnp.sum(w[:, None] * targets, 0) / m
    zc = w[:, None] * (z_train - mean_z)
    gram = jnp.matmul(zc.T, zc, precision=HIGHEST)
    lam = regularization * jnp.trace(gram) / d
    rhs = jnp.matmul(zc.T, w[:, None] * (targets - mean_t), precision=HIGHEST)
    weights = _linalg.spd_solve(gram + lam * jnp.eye(d, dtype=gram.dtype), rhs)
    scores = jnp.matmul(z_test - mean_z, weights, precision=HIGHEST) + mean_t
    accuracy = _accuracy(jnp.argmax(scores, -1), y_test, test_mask)
    return jnp.where((jnp.asarray(regularization) > 0) & jnp.all(jnp.isfinite(scores)), accuracy, jnp.nan)


class RepresentationMetrics(NamedTuple):
    """Every measure of one set of held-out features (a pytree of arrays).

    Attributes:
      dse: ``DSE(Z)`` in bits.
      dsmi: ``DSMI(Z; Y)`` in bits (subsample estimator).
      rankme: RankMe (effective number of dimensions).
      participation_ratio: participation ratio of the covariance spectrum.
      alpha_req: power-law decay exponent of the covariance spectrum.
      renyi_entropy: matrix-based Renyi entropy ``S_alpha(Z)`` in bits.
      renyi_mi: matrix-based Renyi mutual information ``I_alpha(Z; Y)`` in bits.
      knn_accuracy: k-nearest-neighbour probe accuracy.
      ridge_accuracy: ridge-regression probe accuracy.
    """

    dse: jax.Array
    dsmi: jax.Array
    rankme: jax.Array
    participation_ratio: jax.Array
    alpha_req: jax.Array
    renyi_entropy: jax.Array
    renyi_mi: jax.Array
    knn_accuracy: jax.Array
    ridge_accuracy: jax.Array


def make_representation_evaluator(
    *,
    num_classes: int,
    max_class_size: int,
    sigma=10.0,
    t=1.0,
    renyi_alpha=2.0,
    k: int = 5,
    regularization=1e-3,
    num_repetitions: int = 5,
    fit_range: tuple[int, int | None] = (1, None),
):
    """A pure ``evaluate(z, y, z_train, y_train, key) -> RepresentationMetrics`` of every measure.

    ``z`` ``[m, d]`` are held-out features with labels ``y`` ``[m]``; the probes
    are fitted on ``z_train`` ``[n, d]`` with ``y_train`` and scored on ``z``.
    ``key`` draws DSMI's comparison subsets. All measures share the one forward
    pass that produced ``z``; nothing is jitted here: ``jax.jit(evaluate)``
    compiles once for given shapes, and ``jax.vmap`` maps it over a population
    (on the CPU its decompositions then run one network at a time: see
    :mod:`jaxdse._linalg`).

    Args:
      num_classes: static number of classes of ``y`` (labels 0..num_classes-1).
      max_class_size: static upper bound on a class's size in ``y`` (DSMI's
        padding; a larger class makes DSMI NaN).
      sigma, t: DSE/DSMI settings (the paper's 10 and 1); ``sigma`` is also the
        Renyi measures' bandwidth.
      renyi_alpha: order of the Renyi measures.
      k: neighbours of the kNN probe; ``regularization``: the ridge probe's.
      num_repetitions: DSMI's random comparison subsets per class.
      fit_range: alpha-ReQ's fitting range (see :func:`jaxdse.metrics.alpha_req`).

    >>> import jax, jax.numpy as jnp
    >>> z = jax.random.normal(jax.random.key(0), (40, 8)); y = jnp.arange(40) % 4
    >>> evaluate = jax.jit(make_representation_evaluator(num_classes=4, max_class_size=10))
    >>> evaluate(z, y, z, y, jax.random.key(1)).rankme.shape
    ()
    """
    for name, value in dict(num_classes=num_classes, max_class_size=max_class_size, k=k).items():
        _checks.check_int(value, name)

    measures = dict(
        dse=lambda z, y, zt, yt, key: dse(z, sigma=sigma, t=t),
        dsmi=lambda z, y, zt, yt, key: dsmi(
            z, y, key=key, sigma=sigma, t=t, num_repetitions=num_repetitions,
            num_classes=num_classes, max_class_size=max_class_size,
        ),
        rankme=lambda z, y, zt, yt, key: rankme(z),
        participation_ratio=lambda z, y, zt, yt, key: participation_ratio(z),
        alpha_req=lambda z, y, zt, yt, key: alpha_req(z, fit_range=fit_range),
        renyi_entropy=lambda z, y, zt, yt, key: renyi_entropy(z, alpha=renyi_alpha, sigma=sigma),
        renyi_mi=lambda z, y, zt, yt, key: renyi_mutual_information(z, y, alpha=renyi_alpha, sigma=sigma),
        knn_accuracy=lambda z, y, zt, yt, key: knn_accuracy(zt, yt, z, y, num_classes=num_classes, k=k),
        ridge_accuracy=lambda z, y, zt, yt, key: ridge_accuracy(
            zt, yt, z, y, num_classes=num_classes, regularization=regularization
        ),
    )

    def evaluate(z, y, z_train, y_train, key):
        values = {}
        for name, measure in measures.items():
            values[name] = measure(z, y, z_train, y_train, key)
            # One measure after another (the next one's inputs wait for this one's value), so that only one
            # measure's n x n work is in flight and in memory at a time.
            z, z_train, _ = jax.lax.optimization_barrier((z, z_train, values[name]))
        return RepresentationMetrics(**values)

    return evaluate

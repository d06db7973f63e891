"""Probes: the held-out accuracy of a cheap classifier on features.

:func:`knn_accuracy` (k nearest neighbours, majority vote) and
:func:`ridge_accuracy` (a linear ridge-regression classifier) fit on training
features and score held-out ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.kernels.points import HIGHEST, sq_distances
from jaxdse.solvers import _linalg

__all__ = ["knn_accuracy", "ridge_accuracy"]


def _check_probe_args(z_train, y_train, z_test, y_test, num_classes, train_mask, test_mask):
    z_train = _checks.as_points(z_train, "z_train", min_rows=1)
    z_test = _checks.as_points(z_test, "z_test", min_rows=1)
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(
            f"z_train and z_test must have the same features, got d={z_train.shape[1]} and {z_test.shape[1]}"
        )
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

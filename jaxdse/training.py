"""Measuring a network's representations while it trains.

The small convolutional network of :mod:`jaxdse.zoo` (re-exported here), an
optax training step, and an evaluation step that computes, in one compiled
call on a held-out set, the accuracy and the paper's three measures of the
penultimate layer ``Z``: ``DSE(Z)``, ``DSMI(Z; Y)`` with the class labels and
``DSMI(Z; X)`` with cluster assignments of the inputs (computed once on the
host with :func:`jaxdse.cluster_reference`, since the inputs never change).
The activations never leave the device.

The network is a Flax ``linen`` module rather than an ``nnx`` one because
``linen`` parameters are a plain pytree kept apart from the (stateless) module:
every step here is a pure function of ``params``, so a batch of candidate
networks (initialisations, seeds) is just a stacked pytree that ``jax.vmap``
maps over, and a whole epoch is one ``lax.scan``. Nothing needs to be split or
merged around the transformations.

Typical use::

    import jax, optax
    from jaxdse import training
    from jaxdse.data import load_digits

    x, y = load_digits()
    (x_tr, y_tr), (x_te, y_te) = training.train_test_split(training.as_images(x), y, key=jax.random.key(0))
    history = training.fit(x_tr, y_tr, x_te, y_te, epochs=10, key=jax.random.key(1))
    history["test_accuracy"], history["dse"], history["dsmi_y"], history["dsmi_x"]

Or piece by piece::

    model, params = training.make_model(jax.random.key(0), width=16, depth=2)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    epoch = training.make_train_epoch(model, optimizer, batch_size=64)   # jitted
    evaluate = training.make_evaluator(model, y_te, x_clusters)           # jitted
    params, opt_state, loss = epoch(params, opt_state, x_tr, y_tr, key)
    metrics = evaluate(params, x_te, y_te, x_clusters, key)        # training.Metrics

Units: entropies and mutual informations in bits. Defaults ``sigma=10, t=1``
are the paper's (penultimate layer, test split).
"""

from __future__ import annotations

import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdse import _checks
from jaxdse._report import progress as progress_bar
from jaxdse.engine import static_sizes
from jaxdse.estimators import dse, dsmi
from jaxdse.zoo import (  # noqa: F401  (re-exported: the training module's public names)
    CNN,
    as_images,
    cluster_inputs,
    make_model,
    penultimate,
    set_conv_std,
    train_test_split,
)

__all__ = [
    "CNN",
    "Metrics",
    "as_images",
    "cluster_inputs",
    "evaluate",
    "fit",
    "make_evaluator",
    "make_model",
    "make_train_epoch",
    "make_regularized_train_step",
    "make_train_step",
    "penultimate",
    "set_conv_std",
    "train_epoch",
    "train_test_split",
]


# ---------------------------------------------------------------- training


def _loss_fn(model):

    def loss(params, x, y):
        logits, z = model.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), z

    return loss


def make_train_step(model, optimizer, *, measure: bool = False, sigma=10.0, t=1.0):
    """A pure optax training step ``step(params, opt_state, x, y) -> (params, opt_state, loss, dse)``.

    One gradient step of the mean softmax cross-entropy on the batch. With
    ``measure=True`` the step also returns ``DSE(z)`` (bits) of the batch's
    penultimate features, computed inside the step from the forward pass it
    already made (no gradient flows through it); otherwise ``dse`` is NaN.
    Not jitted: wrap it in ``jax.jit`` (or use :func:`make_train_epoch`).
    """
    loss_fn = _loss_fn(model)

    def step(params, opt_state, x, y):
        (loss, z), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if measure:
            entropy = dse(jax.lax.stop_gradient(z), sigma=sigma, t=t)
        else:
            entropy = jnp.asarray(jnp.nan, loss.dtype)
        return params, opt_state, loss, entropy

    return step


def make_regularized_train_step(model, optimizer, penalty: Callable):
    """A pure training step with a representation term in the loss.

    ``step(params, opt_state, x, y, key, weight) -> (params, opt_state, cross_entropy, penalty_value)``
    takes one optax step on ``cross_entropy + weight * penalty(z, y, key)``,
    where ``z`` are the batch's penultimate features from the same forward pass
    and the gradient flows through both terms (the exact gradient of the
    penalty at batch size). ``penalty`` is any pure function of ``(z [b, f],
    y [b], key)`` returning a scalar, e.g. minus DSMI for a bonus::

        bonus = lambda z, y, key: -jaxdse.dsmi(z, y, key=key, sigma=10.0, t=1.0,
                                               num_classes=10, max_class_size=10)
        step = jax.jit(make_regularized_train_step(model, optax.adam(1e-3), bonus))

    ``weight`` is traced, so ``jax.vmap`` runs several weights (and seeds) in
    one compiled step; ``weight = 0`` trains on the cross-entropy alone. Not
    jitted.
    """

    def loss(params, x, y, key, weight):
        logits, z = model.apply({"params": params}, x)
        cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        term = penalty(z, y, key)
        return cross_entropy + weight * term, (cross_entropy, term)

    def step(params, opt_state, x, y, key, weight):
        (_, (cross_entropy, term)), grads = jax.value_and_grad(loss, has_aux=True)(params, x, y, key, weight)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, cross_entropy, term

    return step


def make_train_epoch(model, optimizer, *, batch_size: int = 64, jit: bool = True):
    """One epoch ``epoch(params, opt_state, x, y, key) -> (params, opt_state, mean_loss)``.

    Shuffles the rows with ``key`` and runs :func:`make_train_step` over
    ``n // batch_size`` full minibatches as one ``lax.scan`` (the last partial
    batch is dropped). Jitted unless ``jit=False`` (e.g. to ``vmap`` it first
    over a stack of candidate parameters and ``jit`` the result).
    """
    _checks.check_int(batch_size, "batch_size")
    step = make_train_step(model, optimizer)

    def epoch(params, opt_state, x, y, key):
        n = x.shape[0]
        num_batches = max(n // batch_size, 1)
        size = min(batch_size, n)
        perm = jax.random.permutation(key, n)[: num_batches * size]
        xb = x[perm].reshape((num_batches, size) + x.shape[1:])
        yb = y[perm].reshape(num_batches, size)

        def body(carry, batch):
            p, s = carry
            p, s, loss, _ = step(p, s, *batch)
            return (p, s), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (xb, yb))
        return params, opt_state, jnp.mean(losses)

    return jax.jit(epoch) if jit else epoch


def train_epoch(model, optimizer, params, opt_state, x, y, *, key, batch_size: int = 64):
    """One epoch of :func:`make_train_epoch`: ``(params, opt_state, mean_loss)``.

    The compiled epoch is cached per ``(model, optimizer, batch_size)`` (modules
    and optax transformations are hashable), so calling this every epoch compiles
    once.
    """
    return _cached_epoch(model, optimizer, batch_size)(params, opt_state, jnp.asarray(x), jnp.asarray(y), _checks.as_key(key))


@functools.lru_cache(maxsize=32)
def _cached_epoch(model, optimizer, batch_size):
    return make_train_epoch(model, optimizer, batch_size=batch_size)


# ---------------------------------------------------------------- evaluation


class Metrics(NamedTuple):
    """What :func:`make_evaluator` measures on a held-out set (bits for entropies).

    Attributes:
      accuracy: fraction of correct predictions.
      loss: mean softmax cross-entropy (nats).
      dse: ``DSE(Z)`` of the penultimate features.
      dsmi_y: ``DSMI(Z; Y)`` with the class labels.
      dsmi_x: ``DSMI(Z; X)`` with the input clusters (NaN if none were given).
    """

    accuracy: jax.Array
    loss: jax.Array
    dse: jax.Array
    dsmi_y: jax.Array
    dsmi_x: jax.Array


def make_evaluator(
    model,
    y,
    x_clusters=None,
    *,
    sigma=10.0,
    t=1.0,
    num_repetitions: int = 5,
    measure: bool = True,
    jit: bool = True,
):
    """A compiled evaluation ``evaluate(params, x, y, x_clusters, key) -> Metrics``.

    ``y`` and ``x_clusters`` (integer ``[n]``, e.g. from :func:`cluster_inputs`)
    given here fix the static class counts and padded class sizes of the two
    DSMIs; the returned function takes them again as (traced) arrays, so it
    compiles once and serves every epoch, every set of parameters and, under
    ``jax.vmap``, a stack of candidate networks. One forward pass gives the
    logits and the penultimate ``z``; ``DSE(z)``, ``DSMI(z; y)`` and
    ``DSMI(z; x_clusters)`` (subsample estimator, ``num_repetitions`` random
    subsets per class, drawn with ``key``) are computed from it inside the same
    computation. With ``measure=False`` only accuracy and loss are computed
    (entropies NaN). Pass ``x_clusters=None`` to skip ``DSMI(Z; X)`` (then
    call with ``x_clusters=None`` too).
    """
    num_classes, max_class = static_sizes(y, name="y")
    if x_clusters is not None:
        num_clusters, max_cluster = static_sizes(x_clusters, name="x_clusters")
        if len(np.asarray(x_clusters)) != len(np.asarray(y)):
            raise ValueError("x_clusters and y must describe the same samples")

    def evaluate(params, x, y, x_clusters, key):
        logits, z = model.apply({"params": params}, x)
        y = y.astype(jnp.int32)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        nan = jnp.asarray(jnp.nan, z.dtype)
        if not measure:
            return Metrics(accuracy, loss, nan, nan, nan)
        key_y, key_x = jax.random.split(key)
        h = dse(z, sigma=sigma, t=t)
        mi_y = dsmi(
            z, y, key=key_y, sigma=sigma, t=t, num_repetitions=num_repetitions,
            num_classes=num_classes, max_class_size=max_class, reference_discrete=True,
        )
        if x_clusters is None:
            mi_x = nan
        else:
            mi_x = dsmi(
                z, x_clusters.astype(jnp.int32), key=key_x, sigma=sigma, t=t, num_repetitions=num_repetitions,
                num_classes=num_clusters, max_class_size=max_cluster, reference_discrete=True,
            )
        return Metrics(accuracy, loss, h, mi_y, mi_x)

    return jax.jit(evaluate) if jit else evaluate


def evaluate(model, params, x, y, x_clusters=None, *, key, sigma=10.0, t=1.0, num_repetitions: int = 5):
    """Convenience: build a :func:`make_evaluator` for these labels and call it once."""
    fn = make_evaluator(model, y, x_clusters, sigma=sigma, t=t, num_repetitions=num_repetitions)
    xc = None if x_clusters is None else jnp.asarray(x_clusters)
    return fn(params, jnp.asarray(x), jnp.asarray(y), xc, _checks.as_key(key))


# ---------------------------------------------------------------- the loop


def fit(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    epochs: int,
    key,
    measure: bool = True,
    x_clusters=None,
    num_clusters: int = 10,
    width: int = 16,
    depth: int = 2,
    features: int = 64,
    conv_std=None,
    learning_rate: float = 1e-3,
    optimizer=None,
    batch_size: int = 64,
    sigma=10.0,
    t=1.0,
    num_repetitions: int = 5,
    params=None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool | str = False,
) -> dict:
    """Train a :class:`CNN` and measure its penultimate layer on the test set every epoch.

    Args:
      x_train, x_test: images ``[n, H, W, C]`` (see :func:`as_images`).
      y_train, y_test: integer labels ``[n]`` (``y_train`` may be shuffled labels
        to be memorised).
      epochs: number of passes over the training set.
      key: ``jax.random`` key (initialisation, shuffling, DSMI subsets).
      measure: compute DSE/DSMI every epoch (else accuracy and loss only).
      x_clusters: ``X`` reference for ``DSMI(Z; X)`` on the test set; by default
        :func:`cluster_inputs` of ``x_test`` into ``num_clusters`` clusters (only
        when ``measure``).
      width, depth, features, conv_std: the model (see :func:`make_model`);
        ignored for the architecture's initial values if ``params`` is given.
      learning_rate, optimizer: Adam with this rate unless an optax optimizer is given.
      batch_size: minibatch size.
      sigma, t, num_repetitions: settings of DSE/DSMI (paper: sigma 10, t 1).
      callback: called as ``callback(epoch, row)`` after each epoch with that
        epoch's numbers (``row`` is a dict of floats).
      progress: show a tqdm progress bar (a string gives its description).

    Returns:
      A history dict of lists, one entry per epoch 0..epochs (entry 0 is before
      training): ``epoch``, ``train_loss`` (NaN at 0), ``train_accuracy``,
      ``test_accuracy``, ``test_loss``, ``dse``, ``dsmi_y``, ``dsmi_x``,
      ``seconds``; plus ``params`` (the final parameters), ``model``,
      ``x_clusters`` (the ``X`` reference used, or None) and ``evaluate`` (the
      compiled test-set evaluator of :func:`make_evaluator`, to measure other
      parameters with the same settings without compiling again).
    """
    x_train = jnp.asarray(x_train, jnp.float32)
    x_test = jnp.asarray(x_test, jnp.float32)
    y_train = jnp.asarray(np.asarray(y_train, np.int32))
    y_test_np = np.asarray(y_test, np.int32)
    y_test = jnp.asarray(y_test_np)
    num_classes = int(max(int(jnp.max(y_train)), int(y_test_np.max())) + 1)
    key, init_key = jax.random.split(_checks.as_key(key))
    model, initial = make_model(
        init_key, width=width, depth=depth, features=features, num_classes=num_classes,
        image_shape=x_train.shape[1:], conv_std=conv_std,
    )
    params = initial if params is None else params
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    opt_state = optimizer.init(params)
    epoch_fn = make_train_epoch(model, optimizer, batch_size=batch_size)
    if measure and x_clusters is None:
        x_clusters = cluster_inputs(x_test, num_clusters)
    clusters = None if (x_clusters is None or not measure) else jnp.asarray(np.asarray(x_clusters, np.int32))
    evaluate_test = make_evaluator(
        model, y_test_np, None if clusters is None else np.asarray(clusters), sigma=sigma, t=t,
        num_repetitions=num_repetitions, measure=measure,
    )
    evaluate_train = make_evaluator(model, np.asarray(y_train), None, measure=False)

    names = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "test_loss", "dse", "dsmi_y", "dsmi_x", "seconds")
    history = {name: [] for name in names}
    start = time.perf_counter()

    def record(epoch, train_loss, key):
        k_eval, _ = jax.random.split(key)
        m = evaluate_test(params, x_test, y_test, clusters, k_eval)
        tr = evaluate_train(params, x_train, y_train, None, k_eval)
        row = dict(
            epoch=epoch, train_loss=float(train_loss), train_accuracy=float(tr.accuracy),
            test_accuracy=float(m.accuracy), test_loss=float(m.loss), dse=float(m.dse),
            dsmi_y=float(m.dsmi_y), dsmi_x=float(m.dsmi_x), seconds=time.perf_counter() - start,
        )
        for name in names:
            history[name].append(row[name])
        if callback is not None:
            callback(epoch, row)
        return row

    bar = progress_bar(total=epochs, desc=progress if isinstance(progress, str) else "epochs", disable=not progress)
    key, k0 = jax.random.split(key)
    record(0, float("nan"), k0)
    for epoch in range(1, epochs + 1):
        key, k_train, k_eval = jax.random.split(key, 3)
        params, opt_state, loss = epoch_fn(params, opt_state, x_train, y_train, k_train)
        row = record(epoch, loss, k_eval)
        bar.update(1)
        bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", dse=f"{row['dse']:.2f}", dsmi_y=f"{row['dsmi_y']:.2f}")
    bar.close()
    history["params"] = params
    history["model"] = model
    history["x_clusters"] = None if clusters is None else np.asarray(clusters)
    history["evaluate"] = evaluate_test
    return history


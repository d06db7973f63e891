"""Watching DSE and DSMI of a network's representation inside its own training and evaluation steps.

For a network whose forward pass returns ``(logits, z)``, ``z`` being the
representation measured (e.g. the penultimate layer):

- :func:`make_train_step`: one optimizer step on the softmax cross-entropy,
  optionally plus ``weight * penalty(z, y, key)`` (a regulariser, differentiated)
  and ``DSE(z)`` of the batch (a monitor, not differentiated), all from one
  forward pass;
- :func:`make_metrics`: accuracy, loss, ``DSE(Z)``, ``DSMI(Z; Y)`` and
  ``DSMI(Z; X)`` from logits and features already computed, a pure function to
  call inside any jitted step;
- :func:`make_evaluator`: the forward pass and those metrics as one compiled
  call on a held-out set.

Two forms of model, chosen by ``apply``:

- ``apply=None``: a ``flax.nnx`` module, called as ``model(x)``. The training
  step takes an ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` and updates model
  and optimizer in place; wrap it in ``nnx.jit`` (``nnx.vmap`` for a population
  of stacked models).
- ``apply(params, x) -> (logits, z)``: parameters as a plain pytree (a linen
  module's ``lambda p, x: module.apply({"params": p}, x)``, or ``nnx.merge`` of a
  split state). The training step takes an optax transformation ``tx`` and
  returns new parameters and optimizer state; wrap it in ``jax.jit``
  (``jax.vmap`` for stacked parameters).

``DSMI(Z; X)`` takes cluster assignments of the inputs as its reference (e.g.
:func:`jaxdse.cluster_reference`, computed once: the inputs do not change).
Entropies and mutual informations in bits; defaults ``sigma=10, t=1`` are the
paper's (penultimate layer, test split).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxdse.entropy.estimators import dse
from jaxdse.mi.engine import static_sizes
from jaxdse.mi.estimators import dsmi

__all__ = ["Metrics", "StepMetrics", "make_evaluator", "make_metrics", "make_regularized_train_step", "make_train_step"]


def _forward(apply):
    if apply is None:
        return lambda model, x: model(x)
    _check_apply(apply)
    return apply


def _check_apply(apply):
    import flax.linen as linen

    if isinstance(apply, linen.Module):
        raise TypeError(
            "apply must be a function apply(params, x) -> (logits, z), got a linen module; pass "
            "apply=lambda params, x: module.apply({'params': params}, x)"
        )
    if not callable(apply):
        raise TypeError(f"apply must be a function apply(params, x) -> (logits, z), got {type(apply).__name__}")


def _cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# ---------------------------------------------------------------- training


class StepMetrics(NamedTuple):
    """What a step of :func:`make_train_step` reports about its batch.

    Attributes:
      loss: the loss differentiated: ``cross_entropy + weight * penalty``
        (``cross_entropy`` without a penalty).
      cross_entropy: mean softmax cross-entropy (nats).
      penalty: ``penalty(z, y, key)``; NaN without a penalty.
      dse: ``DSE(z)`` (bits) of the batch's features before the update, not
        differentiated; NaN unless ``monitor=True``.
    """

    loss: jax.Array
    cross_entropy: jax.Array
    penalty: jax.Array
    dse: jax.Array


def make_train_step(
    *,
    apply: Callable | None = None,
    tx: optax.GradientTransformation | None = None,
    penalty: Callable | None = None,
    monitor: bool = False,
    sigma=10.0,
    t=1.0,
):
    """A training step on the cross-entropy, with an optional representation penalty and DSE monitor.

    Args:
      apply: ``None`` for an NNX module (called as ``model(x)``), or
        ``apply(params, x) -> (logits, z)`` for a parameter pytree.
      tx: the optax transformation; only with ``apply`` (an NNX step takes its
        ``nnx.Optimizer`` as an argument).
      penalty: ``penalty(z, y, key) -> scalar``, a pure function of the batch's
        features, labels and a key, added to the loss times ``weight`` and
        differentiated (the exact gradient at batch size), e.g. a DSMI bonus
        ``lambda z, y, key: -jaxdse.dsmi(z, y, key=key, num_classes=10,
        max_class_size=10)``.
      monitor: also report ``DSE(z)`` of the batch (no gradient flows through it).
      sigma, t: the monitor's settings.

    Returns:
      With ``apply=None``: ``step(model, optimizer, x, y, key=None, weight=1.0) ->
      StepMetrics``, updating ``model`` and ``optimizer`` in place. With
      ``apply``: ``step(params, opt_state, x, y, key=None, weight=1.0) ->
      (params, opt_state, StepMetrics)``. ``key`` goes to ``penalty``; ``weight``
      may be traced (``vmap`` over weights). Not jitted.

    Raises:
      TypeError: ``apply`` is not a function (e.g. a linen module itself).
      ValueError: ``tx`` without ``apply``, or ``apply`` without ``tx``.
    """
    forward = _forward(apply)
    if apply is None and tx is not None:
        raise ValueError("tx: an NNX step takes its nnx.Optimizer as an argument; pass tx only with apply")
    if apply is not None and tx is None:
        raise ValueError("tx: a step on a parameter pytree (apply given) needs an optax transformation")

    def loss_fn(model, x, y, key, weight):
        logits, z = forward(model, x)
        cross_entropy = _cross_entropy(logits, y)
        if penalty is None:
            return cross_entropy, (cross_entropy, jnp.full((), jnp.nan, cross_entropy.dtype), z)
        term = penalty(z, y, key)
        return cross_entropy + weight * term, (cross_entropy, term, z)

    def report(loss, aux):
        cross_entropy, term, z = aux
        h = dse(jax.lax.stop_gradient(z), sigma=sigma, t=t) if monitor else jnp.full((), jnp.nan, loss.dtype)
        return StepMetrics(loss, cross_entropy, term, h)

    if apply is None:

        def step(model, optimizer, x, y, key=None, weight=1.0):
            (loss, aux), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y, key, weight)
            optimizer.update(model, grads)
            return report(loss, aux)

    else:

        def step(params, opt_state, x, y, key=None, weight=1.0):
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, key, weight)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, report(loss, aux)

    return step


def make_regularized_train_step(model, optimizer, penalty: Callable):
    """Deprecated: ``make_train_step(apply=..., tx=optimizer, penalty=penalty)``.

    The former linen form: ``step(params, opt_state, x, y, key, weight) ->
    (params, opt_state, cross_entropy, penalty_value)`` for a linen module.
    """
    warnings.warn(
        "jaxdse.monitor.training.make_regularized_train_step is deprecated: use make_train_step(penalty=...) "
        "(an NNX module, or apply= and tx= for a parameter pytree)",
        DeprecationWarning,
        stacklevel=2,
    )
    step = make_train_step(apply=lambda p, x: model.apply({"params": p}, x), tx=optimizer, penalty=penalty)

    def legacy(params, opt_state, x, y, key, weight):
        params, opt_state, out = step(params, opt_state, x, y, key, weight)
        return params, opt_state, out.cross_entropy, out.penalty

    return legacy


# ---------------------------------------------------------------- evaluation


class Metrics(NamedTuple):
    """What :func:`make_metrics` and :func:`make_evaluator` measure (bits for entropies).

    Attributes:
      accuracy: fraction of correct predictions.
      loss: mean softmax cross-entropy (nats).
      dse: ``DSE(Z)``.
      dsmi_y: ``DSMI(Z; Y)`` with the class labels.
      dsmi_x: ``DSMI(Z; X)`` with the input clusters (NaN if none were given).
    """

    accuracy: jax.Array
    loss: jax.Array
    dse: jax.Array
    dsmi_y: jax.Array
    dsmi_x: jax.Array


def make_metrics(y, x_clusters=None, *, sigma=10.0, t=1.0, num_repetitions: int = 5, measure: bool = True):
    """A pure ``metrics(logits, z, y, x_clusters, key) -> Metrics``, to call inside a jitted step.

    ``y`` and ``x_clusters`` (integer ``[n]``) given here fix the static class
    counts and padded class sizes of the two DSMIs; the returned function takes
    them again as (traced) arrays of the same length, so it compiles once for
    every set of parameters, key and relabelling. ``DSMI`` uses the subsample
    estimator, ``num_repetitions`` random subsets per class, drawn with ``key``.
    With ``measure=False`` only accuracy and loss are computed (entropies NaN).
    Pass ``x_clusters=None`` to skip ``DSMI(Z; X)`` (and call with ``None``).
    Not jitted.
    """
    num_classes, max_class = static_sizes(y, name="y")
    if x_clusters is not None:
        num_clusters, max_cluster = static_sizes(x_clusters, name="x_clusters")
        if len(np.asarray(x_clusters)) != len(np.asarray(y)):
            raise ValueError("x_clusters and y must describe the same samples")

    def metrics(logits, z, y, x_clusters, key):
        y = y.astype(jnp.int32)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
        loss = _cross_entropy(logits, y)
        nan = jnp.asarray(jnp.nan, z.dtype)
        if not measure:
            return Metrics(accuracy, loss, nan, nan, nan)
        key_y, key_x = jax.random.split(key)
        h = dse(z, sigma=sigma, t=t)
        mi_y = dsmi(
            z,
            y,
            key=key_y,
            sigma=sigma,
            t=t,
            num_repetitions=num_repetitions,
            num_classes=num_classes,
            max_class_size=max_class,
            reference_discrete=True,
        )
        if x_clusters is None:
            mi_x = nan
        else:
            mi_x = dsmi(
                z,
                x_clusters.astype(jnp.int32),
                key=key_x,
                sigma=sigma,
                t=t,
                num_repetitions=num_repetitions,
                num_classes=num_clusters,
                max_class_size=max_cluster,
                reference_discrete=True,
            )
        return Metrics(accuracy, loss, h, mi_y, mi_x)

    return metrics


def make_evaluator(
    y,
    x_clusters=None,
    *,
    apply: Callable | None = None,
    sigma=10.0,
    t=1.0,
    num_repetitions: int = 5,
    measure: bool = True,
    jit: bool = True,
):
    """A compiled evaluation ``evaluate(model, x, y, x_clusters, key) -> Metrics``.

    One forward pass (``model(x)`` for an NNX module, ``apply(model, x)`` for a
    parameter pytree) gives the logits and ``z``; :func:`make_metrics` (same
    ``y``, ``x_clusters`` and settings) measures them in the same computation,
    so the activations never leave the device. Jitted (``nnx.jit`` for NNX
    modules, ``jax.jit`` with ``apply``) unless ``jit=False``, e.g. to ``vmap``
    it over a population first.
    """
    if callable(y) and not hasattr(y, "shape"):  # the former make_evaluator(model, y, ...)
        raise TypeError(
            "make_evaluator(y, x_clusters, *, apply=None, ...) takes the labels first; the model goes to the "
            "returned evaluate(model, x, y, x_clusters, key)"
        )
    forward = _forward(apply)
    metrics = make_metrics(y, x_clusters, sigma=sigma, t=t, num_repetitions=num_repetitions, measure=measure)

    def evaluate(model, x, y, x_clusters, key):
        logits, z = forward(model, x)
        return metrics(logits, z, y, x_clusters, key)

    if not jit:
        return evaluate
    return nnx.jit(evaluate) if apply is None else jax.jit(evaluate)


# ---------------------------------------------------------------- moved names

# jaxdse.monitor.training (the old path) also gives jaxdse.zoo's fit, as_images,
# train_test_split and cluster_inputs, with a DeprecationWarning (jaxdse._moved).
_REMOVED = {
    "CNN": "jaxdse.zoo.CNN, a flax.nnx module: CNN(image_shape, width=..., rngs=nnx.Rngs(seed))",
    "make_model": "jaxdse.zoo.CNN(image_shape, ..., conv_std=..., rngs=nnx.Rngs(seed))",
    "penultimate": "model(x)[1] (jaxdse.zoo.CNN returns (logits, z))",
    "set_conv_std": "jaxdse.zoo.CNN(..., conv_std=std) (vmap it with nnx.vmap for several stds)",
    "make_train_epoch": "jaxdse.zoo.train_epoch(model, optimizer, x, y, key, batch_size=...) under nnx.jit",
    "train_epoch": "jaxdse.zoo.train_epoch(model, optimizer, x, y, key, batch_size=...) under nnx.jit",
    "evaluate": "make_evaluator(y, x_clusters)(model, x, y, x_clusters, key)",
}


def __getattr__(name):
    if name in _REMOVED:
        raise AttributeError(f"jaxdse.monitor.training.{name} was removed; use {_REMOVED[name]}")
    raise AttributeError(f"module 'jaxdse.monitor.training' has no attribute {name!r}")

"""The example network and training loop of ``jaxdse demo``: a small ``flax.nnx`` CNN, image helpers, ``fit``.

Why this is in the package: ``jaxdse demo`` trains this network after
``pip install .``, where ``examples/`` is not installed (the examples import it
from here too). It is example code, not the measuring API: to watch DSE and
DSMI in your own training step, see :mod:`jaxdse.monitor.training`.

:class:`CNN` returns ``(logits, z)``, ``z`` being the penultimate layer whose
DSE and DSMI are measured; :func:`train_epoch` is one epoch as one scan, and
:func:`fit` trains and measures on a test set every epoch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxdse import _checks
from jaxdse.io._report import progress as progress_bar
from jaxdse.mi.clustering import cluster_reference
from jaxdse.monitor import training

__all__ = ["CNN", "as_images", "cluster_inputs", "fit", "train_epoch", "train_test_split"]


# ---------------------------------------------------------------- data


def as_images(x, image_shape: Sequence[int] | None = None):
    """Images ``[n, H, W, C]`` float32 in [0, 1] from pixels ``[n, H*W]``, ``[n, H, W]`` or ``[n, H, W, C]``.

    Flat square images (e.g. the 8x8 digits ``[n, 64]``) are reshaped to
    ``[n, s, s, 1]``; other flat inputs need ``image_shape``. Pixels are divided
    by the largest absolute value (digits: 16) so that they lie in [0, 1] (or
    [-1, 1]).

    Raises:
      ValueError: if ``x`` is not 2-, 3- or 4-dimensional, or a flat row is not
        a square number of pixels and no ``image_shape`` is given.
    """
    x = np.asarray(x, np.float32)
    if image_shape is not None:
        x = x.reshape((x.shape[0],) + tuple(image_shape))
    elif x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"x: rows of {x.shape[1]} pixels are not square images; pass image_shape")
        x = x.reshape(x.shape[0], side, side, 1)
    elif x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"x must have shape [n, H*W], [n, H, W] or [n, H, W, C], got {x.shape}")
    scale = float(np.max(np.abs(x))) if x.size else 1.0
    return x / (scale if scale > 0 else 1.0)


def train_test_split(x, y, *, key, test_fraction: float = 0.2):
    """Random split ``((x_train, y_train), (x_test, y_test))`` of numpy arrays (host)."""
    n = len(x)
    perm = np.asarray(jax.random.permutation(_checks.as_key(key), n))
    n_test = int(round(n * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    x, y = np.asarray(x), np.asarray(y)
    return (x[train], y[train]), (x[test], y[test])


def cluster_inputs(x, num_clusters: int = 10, *, key=None):
    """Cluster assignments ``[n]`` int32 of the flattened inputs ``X`` (computed once, on the host).

    :func:`jaxdse.cluster_reference` (spectral clustering on a nearest-neighbour
    graph, as the reference package) of ``x.reshape(n, -1)``. Pass the result to
    the evaluator as the ``X`` reference of ``DSMI(Z; X)``.
    """

    flat = np.asarray(x, np.float32).reshape(len(x), -1)
    return np.asarray(cluster_reference(flat, num_clusters, key=key), np.int32)


# ---------------------------------------------------------------- model


class CNN(nnx.Module):
    """Conv(3x3) -> ReLU [-> 2x2 average pool] x ``depth`` -> Linear(``features``) -> ReLU -> Linear(classes).

    ``width`` channels in the first convolution, doubled after each pooling.
    Pooling happens while the feature map is at least 4 pixels wide. Input
    ``[b, H, W, C]`` with ``(H, W, C) = image_shape``; returns ``(logits [b,
    num_classes], z [b, features])``, ``z`` being the penultimate layer (after
    its ReLU), the representation the paper measures. Kernels are LeCun normal
    and biases zero (Flax's defaults), or the convolution kernels
    ``N(0, conv_std^2)``; ``conv_std`` may be traced (``nnx.vmap`` over stds).
    ``rngs``: an ``nnx.Rngs``, a ``jax.random`` key or an integer seed.

    >>> model = CNN((8, 8, 1), width=4, depth=1, features=8, rngs=0)
    >>> logits, z = model(jnp.zeros((2, 8, 8, 1)))
    >>> logits.shape, z.shape
    ((2, 10), (2, 8))
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (8, 8, 1),
        *,
        width: int = 16,
        depth: int = 2,
        features: int = 64,
        num_classes: int = 10,
        conv_std=None,
        rngs,
    ):
        for name, value in dict(width=width, depth=depth, features=features, num_classes=num_classes).items():
            _checks.check_int(value, name)
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
        if not isinstance(rngs, nnx.Rngs):
            rngs = nnx.Rngs(_checks.as_key(rngs, "rngs"))
        kernel_init = nnx.initializers.lecun_normal() if conv_std is None else nnx.initializers.normal(conv_std)
        height, wide, channels = image_shape
        convs, pools, out = [], [], width
        for _ in range(depth):
            convs.append(nnx.Conv(channels, out, (3, 3), padding="SAME", kernel_init=kernel_init, rngs=rngs))
            channels = out
            pool = height >= 4 and wide >= 4
            pools.append(pool)
            if pool:
                height, wide, out = height // 2, wide // 2, out * 2
        self.convs = nnx.List(convs)
        self.pools = tuple(pools)
        self.hidden = nnx.Linear(height * wide * channels, features, rngs=rngs)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x):
        for conv, pool in zip(self.convs, self.pools):
            x = nnx.relu(conv(x))
            if pool:
                x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        z = nnx.relu(self.hidden(x.reshape(x.shape[0], -1)))
        return self.head(z), z


# ---------------------------------------------------------------- training

_step = training.make_train_step()


def train_epoch(model, optimizer, x, y, key, *, batch_size: int = 64):
    """One epoch in place; returns the mean training loss.

    Shuffles the rows with ``key`` and takes one step of
    :func:`jaxdse.monitor.training.make_train_step` (cross-entropy) on each of the
    ``n // batch_size`` full minibatches, as one ``nnx.scan`` (the last partial
    batch is dropped). ``optimizer``: an ``nnx.Optimizer`` of ``model``. Not
    jitted: ``nnx.jit(train_epoch, static_argnames="batch_size")``, or
    ``nnx.vmap`` it over a population of stacked models first.
    """
    _checks.check_int(batch_size, "batch_size")
    n = x.shape[0]
    num_batches = max(n // batch_size, 1)
    size = min(batch_size, n)
    perm = jax.random.permutation(key, n)[: num_batches * size]
    xb = x[perm].reshape((num_batches, size) + x.shape[1:])
    yb = y[perm].reshape(num_batches, size)

    @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))
    def body(carry, xs, ys):
        return carry, _step(*carry, xs, ys).loss

    _, losses = body((model, optimizer), xb, yb)
    return jnp.mean(losses)


@functools.lru_cache(maxsize=8)
def _jitted_epoch(batch_size: int):
    return nnx.jit(functools.partial(train_epoch, batch_size=batch_size))


def fit(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    epochs: int,
    key,
    model: nnx.Module | None = None,
    measure: bool = True,
    x_clusters=None,
    num_clusters: int = 10,
    width: int = 16,
    depth: int = 2,
    features: int = 64,
    conv_std=None,
    learning_rate: float = 1e-3,
    tx: optax.GradientTransformation | None = None,
    batch_size: int = 64,
    sigma=10.0,
    t=1.0,
    num_repetitions: int = 5,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool | str = False,
) -> dict:
    """Train a :class:`CNN` and measure its penultimate layer on the test set every epoch.

    Args:
      x_train, x_test: images ``[n, H, W, C]`` (see :func:`as_images`).
      y_train, y_test: integer labels ``[n]`` (``y_train`` may be shuffled labels
        to be memorised).
      epochs: number of passes over the training set.
      key: ``jax.random`` key or integer seed (initialisation, shuffling, DSMI subsets).
      model: an NNX module returning ``(logits, z)`` to train in place; by
        default a new :class:`CNN` of ``width``, ``depth``, ``features``, ``conv_std``.
      measure: compute DSE/DSMI every epoch (else accuracy and loss only).
      x_clusters: ``X`` reference for ``DSMI(Z; X)`` on the test set; by default
        :func:`cluster_inputs` of ``x_test`` into ``num_clusters`` clusters (only
        when ``measure``).
      learning_rate, tx: Adam with this rate unless an optax transformation is given.
      batch_size: minibatch size.
      sigma, t, num_repetitions: settings of DSE/DSMI (paper: sigma 10, t 1).
      callback: called as ``callback(epoch, row)`` after each epoch with that
        epoch's numbers (``row`` is a dict of floats).
      progress: show a tqdm progress bar (a string gives its description).

    Returns:
      A history dict of lists, one entry per epoch 0..epochs (entry 0 is before
      training): ``epoch``, ``train_loss`` (NaN at 0), ``train_accuracy``,
      ``test_accuracy``, ``test_loss``, ``dse``, ``dsmi_y``, ``dsmi_x``,
      ``seconds``; plus ``model`` (the trained module), ``optimizer`` (its
      ``nnx.Optimizer``), ``x_clusters`` (the ``X`` reference used, or None) and
      ``evaluate`` (the compiled test-set evaluator of
      :func:`jaxdse.monitor.training.make_evaluator`, to measure other models with the
      same settings without compiling again).
    """
    x_train = jnp.asarray(x_train, jnp.float32)
    x_test = jnp.asarray(x_test, jnp.float32)
    y_train = jnp.asarray(np.asarray(y_train, np.int32))
    y_test_np = np.asarray(y_test, np.int32)
    y_test = jnp.asarray(y_test_np)
    num_classes = int(max(int(jnp.max(y_train)), int(y_test_np.max())) + 1)
    key, init_key = jax.random.split(_checks.as_key(key))
    if model is None:
        model = CNN(
            x_train.shape[1:],
            width=width,
            depth=depth,
            features=features,
            num_classes=num_classes,
            conv_std=conv_std,
            rngs=init_key,
        )
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate) if tx is None else tx, wrt=nnx.Param)
    _checks.check_int(batch_size, "batch_size")
    epoch_fn = _jitted_epoch(batch_size)
    if measure and x_clusters is None:
        x_clusters = cluster_inputs(x_test, num_clusters)
    clusters = None if (x_clusters is None or not measure) else jnp.asarray(np.asarray(x_clusters, np.int32))
    evaluate_test = training.make_evaluator(
        y_test_np,
        None if clusters is None else np.asarray(clusters),
        sigma=sigma,
        t=t,
        num_repetitions=num_repetitions,
        measure=measure,
    )
    evaluate_train = training.make_evaluator(np.asarray(y_train), None, measure=False)

    names = (
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_accuracy",
        "test_loss",
        "dse",
        "dsmi_y",
        "dsmi_x",
        "seconds",
    )
    history = {name: [] for name in names}
    start = time.perf_counter()

    def record(epoch, train_loss, key):
        k_eval, _ = jax.random.split(key)
        m = evaluate_test(model, x_test, y_test, clusters, k_eval)
        tr = evaluate_train(model, x_train, y_train, None, k_eval)
        row = dict(
            epoch=epoch,
            train_loss=float(train_loss),
            train_accuracy=float(tr.accuracy),
            test_accuracy=float(m.accuracy),
            test_loss=float(m.loss),
            dse=float(m.dse),
            dsmi_y=float(m.dsmi_y),
            dsmi_x=float(m.dsmi_x),
            seconds=time.perf_counter() - start,
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
        loss = epoch_fn(model, optimizer, x_train, y_train, k_train)
        row = record(epoch, loss, k_eval)
        bar.update(1)
        bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", dse=f"{row['dse']:.2f}", dsmi_y=f"{row['dsmi_y']:.2f}")
    bar.close()
    history["model"] = model
    history["optimizer"] = optimizer
    history["x_clusters"] = None if clusters is None else np.asarray(clusters)
    history["evaluate"] = evaluate_test
    return history

"""The example convolutional network and image data helpers (``jaxdse demo`` trains them).

A Flax ``linen`` CNN for small images (the 8x8 digits by default): its
parameters are a plain pytree kept apart from the stateless module, so a batch
of networks (initialisations, seeds) is a stacked pytree that ``jax.vmap`` maps
over. ``penultimate`` gives the representation ``Z`` whose DSE and DSMI are
measured.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import flax.linen as linen
import numpy as np

from jaxdse import _checks
from jaxdse.clustering import cluster_reference


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


class CNN(linen.Module):
    """Conv(3x3) -> ReLU [-> 2x2 average pool] x ``depth`` -> Dense(``features``) -> ReLU -> Dense(classes).

    ``width`` channels in the first convolution, doubled after each pooling.
    Pooling happens while the feature map is at least 4 pixels wide. Input
    ``[b, H, W, C]``; returns ``(logits [b, num_classes], z [b, features])``;
    ``z`` is the penultimate layer (after its ReLU), the representation the
    paper measures.
    """

    width: int = 16
    depth: int = 2
    features: int = 64
    num_classes: int = 10

    @linen.compact
    def __call__(self, x):
        channels = self.width
        for _ in range(self.depth):
            x = linen.relu(linen.Conv(channels, (3, 3), padding="SAME")(x))
            if x.shape[1] >= 4 and x.shape[2] >= 4:
                x = linen.avg_pool(x, (2, 2), strides=(2, 2))
                channels *= 2
        x = x.reshape(x.shape[0], -1)
        z = linen.relu(linen.Dense(self.features)(x))
        logits = linen.Dense(self.num_classes)(z)
        return logits, z


def make_model(
    key,
    *,
    width: int = 16,
    depth: int = 2,
    features: int = 64,
    num_classes: int = 10,
    image_shape: Sequence[int] = (8, 8, 1),
    conv_std=None,
):
    """A :class:`CNN` and its initial parameters.

    Args:
      key: ``jax.random`` key for the initialisation.
      width, depth, features, num_classes: the architecture (see :class:`CNN`).
      image_shape: ``(H, W, C)`` of one input image.
      conv_std: if given, the convolution kernels are drawn from ``N(0, conv_std^2)``
        (see :func:`set_conv_std`); otherwise Flax's default (LeCun normal).

    Returns:
      ``(model, params)``; ``model.apply({"params": params}, x)`` gives
      ``(logits, z)``.

    >>> import jax
    >>> model, params = make_model(jax.random.key(0), width=4, depth=1, features=8)
    >>> logits, z = model.apply({"params": params}, jnp.zeros((2, 8, 8, 1)))
    >>> logits.shape, z.shape
    ((2, 10), (2, 8))
    """
    for name, value in dict(width=width, depth=depth, features=features, num_classes=num_classes).items():
        _checks.check_int(value, name)
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
    model = CNN(width=width, depth=depth, features=features, num_classes=num_classes)
    init_key, conv_key = jax.random.split(_checks.as_key(key))
    params = _jitted_init(model, image_shape)(init_key)["params"]
    if conv_std is not None:
        params = set_conv_std(params, conv_key, conv_std)
    return model, params


@functools.lru_cache(maxsize=64)
def _jitted_init(model, image_shape):
    """One compiled initialiser per architecture and input shape (modules are hashable)."""
    return jax.jit(lambda key: model.init(key, jnp.zeros((1,) + image_shape, jnp.float32)))


def set_conv_std(params, key, std):
    """Redraw every convolution kernel of ``params`` from ``N(0, std^2)`` (biases unchanged).

    ``std`` is traced: ``jax.vmap(set_conv_std, (None, 0, 0))(params, keys, stds)``
    builds a stacked batch of candidate initialisations in one call.
    """
    leaves = _conv_kernel_paths(params)
    keys = jax.random.split(key, max(len(leaves), 1))

    def replace(path, leaf):
        if path in leaves:
            k = keys[leaves.index(path)]
            return std * jax.random.normal(k, leaf.shape, leaf.dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(lambda p, leaf: replace(jax.tree_util.keystr(p), leaf), params)


def _conv_kernel_paths(params):
    paths = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        s = jax.tree_util.keystr(path)
        if "Conv" in s and s.endswith("['kernel']"):
            paths.append(s)
    return sorted(paths)


def penultimate(model, params, x):
    """The penultimate features ``z`` ``[n, features]`` of images ``x``."""
    return model.apply({"params": params}, x)[1]

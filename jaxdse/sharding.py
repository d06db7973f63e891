"""Spreading jaxdse's work over a ``jax.sharding.Mesh`` of devices.

Two patterns, both plain JAX sharding (no communication code of our own):

* row sharding inside one operator: :mod:`jaxdse.operators` splits the rows of
  ``x`` over the mesh with ``shard_map`` (``dse(..., method="slq", mesh=mesh)``);
* batch sharding: :func:`sharded_vmap` runs a ``vmap`` whose batch (e.g. DSMI's
  batches of padded subsets) is split over the mesh's first axis.

On several GPUs of one host, ``jax.sharding.Mesh(jax.devices(), ("data",))`` is
all it takes. On several hosts, call ``jax.distributed.initialize()`` on every
host first; ``jax.devices()`` then lists all hosts' devices and the same code
runs as one program on each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def check_mesh(mesh, name: str = "mesh"):
    """``mesh`` is ``None`` or a ``jax.sharding.Mesh``; returns it."""
    if mesh is not None and not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"{name} must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    return mesh


def sharded_vmap(fn, mesh):
    """``jax.vmap(fn)`` with the batch (leading axis of every argument) split over ``mesh``.

    The batch is padded on the host to a multiple of the mesh's first-axis size
    (repeating the last item), laid out with ``NamedSharding(mesh, P(axis))``,
    mapped, and the padding is cut off. With ``mesh=None`` it is ``jax.vmap(fn)``.
    Works inside or outside ``jit``.

    >>> import jax, jax.numpy as jnp
    >>> mesh = jax.sharding.Mesh(jax.devices(), ("data",))
    >>> sharded_vmap(lambda a: a * 2, mesh)(jnp.arange(3.0)).tolist()
    [0.0, 2.0, 4.0]
    """
    check_mesh(mesh)
    mapped = jax.vmap(fn)
    if mesh is None:
        return mapped
    axis = mesh.axis_names[0]
    size = mesh.shape[axis]
    batch_sharding = NamedSharding(mesh, P(axis))

    def run(*args):
        leaves = jax.tree_util.tree_leaves(args)
        batch = leaves[0].shape[0]
        pad = (-batch) % size

        def prepare(a):
            a = jnp.asarray(a)
            if pad:
                a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)])
            return jax.lax.with_sharding_constraint(a, batch_sharding)

        out = mapped(*jax.tree_util.tree_map(prepare, args))
        out = jax.tree_util.tree_map(lambda o: jax.lax.with_sharding_constraint(o, batch_sharding), out)
        return jax.tree_util.tree_map(lambda o: o[:batch], out)

    return run

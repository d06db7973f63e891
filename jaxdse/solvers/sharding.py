"""Spreading jaxdse's work over a ``jax.sharding.Mesh`` of devices.

Two patterns, both ``jax.shard_map`` with one collective (an all-gather of the
result), so every device runs the same program on its share:

* row sharding inside one operator (:func:`row_sharded`): each device computes
  its share of the rows of a kernel product; :mod:`jaxdse.solvers.operators` uses it for
  ``dse(..., solver=SLQ(mesh=mesh))``;
* batch sharding (:func:`sharded_vmap`): a ``vmap`` whose batch (e.g. DSMI's
  padded subsets) is split over the devices.

Any mesh works: ``jax.make_mesh(shape, names)`` with its default (explicit)
axis types, explicit or auto axes, or ``jax.sharding.Mesh(devices, names)``.
**All axes of the mesh are used, flattened**: a ``(2, 4)`` mesh splits the
rows or the batch 8 ways, in the mesh's device order. Inputs may be host
arrays, arrays on one device or arrays already sharded in any layout; they are
copied to every device of the mesh (the ``[n, d]`` points are small next to
the ``n x n`` work they feed), and results come back replicated on every
device of the mesh, readable with ``float``/``np.asarray`` in every process.

On several GPUs of one host, ``jax.make_mesh((jax.device_count(),), ("data",))``
is all it takes. On several hosts, call ``jax.distributed.initialize()`` in
every process first; ``jax.devices()`` then lists every process's devices,
the same mesh is built in each, and every process runs the same call with the
same inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from jaxdse._checks import check_mesh


def num_shards(mesh) -> int:
    """How many ways work is split over ``mesh``: all its devices (1 for ``None``)."""
    return 1 if mesh is None else int(mesh.devices.size)


def auto_mesh(mesh):
    """The same devices and axis names with every axis ``Auto``.

    Values carried on ``Explicit`` axes cannot be closed over inside
    ``shard_map``, and their sharding is part of their type; jaxdse therefore
    runs its own programs on the ``Auto`` twin of the user's mesh.
    """
    check_mesh(mesh)
    if mesh is None or all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def replicate_input(a, mesh):
    """``a`` as an unsharded value that jaxdse's programs copy to every device of ``mesh``.

    Accepts host arrays and concrete ``jax.Array``s in any layout: on one
    device, sharded on ``mesh`` or another mesh, on ``Explicit`` or ``Auto``
    axes, or spread over several processes. A sharded array is gathered (it
    is ``[n, d]`` points, small next to the ``n x n`` work it feeds) so that
    its type carries no mesh; in a run over several processes every process
    must pass the same values. Unchanged for ``mesh=None`` and for a traced
    value (inside the caller's ``jit``, whose own sharding then applies).
    """
    if mesh is None or isinstance(a, jax.core.Tracer):
        return a
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        from jax.experimental import multihost_utils

        a = multihost_utils.process_allgather(a, tiled=True)
    return jnp.asarray(np.asarray(a))


def local_part(a, axes, size: int):
    """This device's ``size`` rows of ``a`` (leading axis)."""
    start = jax.lax.axis_index(axes) * size
    return jax.lax.dynamic_slice_in_dim(a, start, size, axis=0)


def row_sharded(fn, mesh, *, num_row_args: int):
    """Run ``fn(*rows, *others) -> [r, ...]`` with its rows split over ``mesh``.

    The returned function takes full, replicated arguments: the first
    ``num_row_args`` (leading dimension ``n``, a multiple of the number of
    devices) are cut into equal row blocks, one per device of the mesh (all
    axes flattened); the others reach every device whole. The per-device
    results ``[n / devices, ...]`` are gathered in order, and the result
    ``[n, ...]`` is replicated on every device. Call it inside ``jit``.
    """
    mesh = auto_mesh(mesh)
    axes = tuple(mesh.axis_names)
    devices = num_shards(mesh)

    def local(*args):
        rows = args[0].shape[0] // devices
        parts = [local_part(a, axes, rows) for a in args[:num_row_args]]
        out = fn(*parts, *args[num_row_args:])
        return jax.lax.all_gather(out, axes, axis=0, tiled=True)

    def run(*args):
        if args[0].shape[0] % devices:
            raise ValueError(f"row_sharded needs a row count divisible by {devices} devices, got {args[0].shape[0]}")
        spec = (P(),) * len(args)
        return jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=P(), check_vma=False)(*args)

    return run


def sharded_vmap(fn, mesh):
    """``jax.vmap(fn)`` with the batch (leading axis of every argument) split over ``mesh``.

    The batch is padded to a multiple of the number of devices (all mesh axes
    flattened) by repeating its last item; each device maps its equal share,
    the shares are gathered, the padding cut off, and the result is replicated
    on every device. ``fn`` may close over other arrays (they reach every
    device whole). With ``mesh=None`` it is ``jax.vmap(fn)``. Works inside or
    outside ``jit``.

    >>> import jax, jax.numpy as jnp
    >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
    >>> sharded_vmap(lambda a: a * 2, mesh)(jnp.arange(3.0)).tolist()
    [0.0, 2.0, 4.0]
    """
    check_mesh(mesh)
    mapped = jax.vmap(fn)
    if mesh is None:
        return mapped
    mesh = auto_mesh(mesh)
    axes = tuple(mesh.axis_names)
    devices = num_shards(mesh)

    def run(*args):
        batch = jax.tree_util.tree_leaves(args)[0].shape[0]
        per_device = -(-batch // devices)
        pad = per_device * devices - batch

        def prepare(a):
            a = jnp.asarray(a)
            return jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a

        def local(*a):
            out = mapped(*jax.tree_util.tree_map(lambda b: local_part(b, axes, per_device), a))
            return jax.tree_util.tree_map(lambda o: jax.lax.all_gather(o, axes, axis=0, tiled=True), out)

        args = jax.tree_util.tree_map(prepare, args)
        spec = (P(),) * len(args)
        out = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=P(), check_vma=False)(*args)
        return jax.tree_util.tree_map(lambda o: o[:batch], out)

    return run

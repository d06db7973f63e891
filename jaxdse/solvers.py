"""How a spectral entropy is computed: solvers as values.

A solver is a small immutable object holding static settings only (a pytree with
no array leaves), so it can be passed to, closed over by, or returned from a
jitted function; every function that computes a diffusion entropy takes one as
``solver=``. Nothing global changes which quantity is computed.

* :class:`Exact`: all eigenvalues of the dense ``n x n`` operator. ``O(n^3)``
  time, ``O(n^2)`` memory; reference-exact.
* :class:`SLQ`: stochastic Lanczos quadrature (matrix-free, :mod:`jaxdse.slq`),
  an estimate with a standard error, for large n. ``O(n^2 d)`` time per product,
  ``O(n (d + p))`` memory with the blockwise operator.

The strings ``"exact"``, ``"eigh"`` and ``"slq"`` are shorthands for
``Exact()``, ``Exact("eigh")`` and ``SLQ()``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from jaxdse import _checks

EIGENSOLVERS = ("auto", "tridiagonal", "eigh")
PROBES = ("rademacher", "gaussian")
OPERATORS = ("auto", "dense", "blockwise")


class Estimate(NamedTuple):
    """A value and its standard error (0 for exact solvers), arrays of the same shape.

    ``t`` is the diffusion time of each value as :func:`jaxdse.dse_estimate`
    reports it (``t="auto"``: the t it chose at the knee, NaN without one);
    ``None`` inside the engine, where ``t`` is an input.
    """

    value: jax.Array
    stderr: jax.Array
    t: jax.Array | None = None


def _static(cls):
    """A frozen dataclass registered as a pytree without leaves (all settings static)."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_pytree_node(cls, lambda s: ((), s), lambda s, _: s)
    return cls


def _check_budget(value):
    if value is not None:
        _checks.check_int(value, "memory_budget", minimum=1)


@_static
class Exact:
    """Exact eigenvalues of the dense diffusion operator.

    Args:
      eigensolver: ``"auto"`` (default: eigenvalues only, by tridiagonal
        reduction and bisection, on CPU; ``"eigh"`` on GPU/TPU), ``"tridiagonal"``
        or ``"eigh"`` (full symmetric eigendecomposition). Derivatives always
        come from a full eigendecomposition, whatever the choice.
      memory_budget: bytes for the dense ``n x n`` arrays; ``None`` uses
        :func:`jaxdse.get_memory_budget`. Above it, a ``MemoryError``.

    >>> Exact()
    Exact(eigensolver='auto', memory_budget=None)
    """

    eigensolver: str = "auto"
    memory_budget: int | None = None

    def __post_init__(self):
        _checks.check_choice(self.eigensolver, "eigensolver", EIGENSOLVERS)
        _check_budget(self.memory_budget)


@_static
class SLQ:
    """Stochastic Lanczos quadrature: a matrix-free DSE estimate with a standard error.

    Cost: ``num_matvecs`` products of the kernel with ``[n, num_probes +
    deflation_rank]`` vectors. See :mod:`jaxdse.slq` for the method.

    Args:
      num_probes: random probe vectors (>= 2: the standard error needs two).
        The default, 64, keeps the gradient's probe noise small enough for
        training (cosine with the exact gradient about 0.99 or more at
        n = 2000 over the whole range of DSE; 16 probes gave 0.966 in the
        middle of it); for values alone, 16 take 2 to 2.4 times less time for
        about twice the standard error.
      num_matvecs: Lanczos steps per vector (quadrature nodes), >= 3.
      deflation_rank: columns of the exactly deflated top subspace (0: none).
        The default, 64, holds the eigenvalues that dominate ``|lambda|^t`` at
        t >= 10 (with 16, the error at t = 10 on a curved manifold at n = 1000
        was about 0.01 bits, with 64 about 0.002).
      probes: ``"rademacher"`` or ``"gaussian"``.
      operator: ``"dense"`` (the ``n x n`` operator held in memory),
        ``"blockwise"`` (row blocks of the kernel recomputed at every product:
        no ``n x n`` array), or ``"auto"``: dense when it fits the memory budget
        and no mesh is given. Both give the same estimate up to rounding.
      block_size: rows per block of the blockwise operator.
      mesh: a ``jax.sharding.Mesh``: the blockwise products split the rows over
        its devices (implies the blockwise operator).
      memory_budget: bytes; ``None`` uses :func:`jaxdse.get_memory_budget`.

    >>> SLQ(num_probes=32).num_probes
    32
    """

    num_probes: int = 64
    num_matvecs: int = 20
    deflation_rank: int = 64
    probes: str = "rademacher"
    operator: str = "auto"
    block_size: int = 512
    mesh: object = None
    memory_budget: int | None = None

    def __post_init__(self):
        _checks.check_int(self.num_probes, "num_probes", minimum=2)
        _checks.check_int(self.num_matvecs, "num_matvecs", minimum=3)
        _checks.check_int(self.deflation_rank, "deflation_rank", minimum=0)
        _checks.check_int(self.block_size, "block_size", minimum=1)
        _checks.check_choice(self.probes, "probes", PROBES)
        _checks.check_choice(self.operator, "operator", OPERATORS)
        if self.mesh is not None and not isinstance(self.mesh, jax.sharding.Mesh):
            raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(self.mesh).__name__}")
        if self.mesh is not None and self.operator == "dense":
            raise ValueError("mesh needs operator='blockwise' (or 'auto'): the dense operator is not sharded")
        _check_budget(self.memory_budget)


SHORTHANDS = {"exact": Exact(), "eigh": Exact("eigh"), "slq": SLQ()}


def as_solver(solver, name: str = "solver"):
    """A solver object from a solver or a shorthand string (``None``: ``Exact()``)."""
    if solver is None:
        return Exact()
    from jaxdse.nystrom import Nystrom  # a module of its own, above this one

    if isinstance(solver, (Exact, SLQ, Nystrom)):
        return solver
    if isinstance(solver, str):
        if solver == "nystrom":
            return Nystrom()
        if solver not in SHORTHANDS:
            raise ValueError(f"{name} must be Exact(...), SLQ(...) or one of {sorted(SHORTHANDS)}, got {solver!r}")
        return SHORTHANDS[solver]
    raise TypeError(f"{name} must be jaxdse.Exact(...), jaxdse.SLQ(...) or jaxdse.Nystrom(...), got {type(solver).__name__}")

"""How a spectral entropy is computed: solvers as values.

A solver is a small immutable object holding static settings only (a pytree with
no array leaves), so it can be passed to, closed over by, or returned from a
jitted function; every function that computes a diffusion entropy takes one as
``solver=``. Nothing global changes which quantity is computed.

* :class:`Exact`: all eigenvalues of the dense ``n x n`` operator. ``O(n^3)``
  time, ``O(n^2)`` memory; reference-exact.
* :class:`Nystrom`: a rank-``m`` landmark factor of the kernel
  (:mod:`jaxdse.entropy.nystrom`), ``O(n m (d + m))`` time, ``O(m^2 + block m)``
  memory, with an error indicator as its standard error.
* :class:`SLQ`: stochastic Lanczos quadrature (matrix-free, :mod:`jaxdse.solvers.slq`),
  an estimate with a standard error, for large n. ``O(n^2 d)`` time per product,
  ``O(n (d + p))`` memory with the blockwise operator.

The strings ``"exact"``, ``"eigh"`` and ``"slq"`` are shorthands for
``Exact()``, ``Exact("eigh")`` and ``SLQ()``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, dataclass_transform

import jax
import numpy as np

from jaxdse import _checks

EIGENSOLVERS = ("auto", "tridiagonal", "eigh")

# SLQ's Lanczos steps by default, on positive semi-definite kernels and on the others.
DEFAULT_MATVECS = 20
INDEFINITE_MATVECS = 40
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


@dataclass_transform(frozen_default=True)
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
    deflation_rank]`` vectors. See :mod:`jaxdse.solvers.slq` for the method.

    Args:
      num_probes: random probe vectors (>= 2: the standard error needs two).
        The default, 64, keeps the gradient's probe noise small enough for
        training (cosine with the exact gradient 0.998 or more at n = 2000
        over the whole range of DSE); for values alone, 16 run Lanczos on 80
        vectors instead of 128, for about twice the standard error.
      num_matvecs: Lanczos steps per vector (quadrature nodes), >= 3, or
        ``None`` (default): 20, and 40 on kernels that need not be positive
        semi-definite (the ``"knn"`` bandwidth rule, precomputed affinities).
        Their spectrum crosses 0, where ``|x|^t`` has a kink that 20 nodes
        resolve only to about 0.01 bits (curved manifold, n = 1000, t = 1:
        bias -0.0095 bits with 20 steps, -0.0008 with 40); see
        :meth:`matvecs_for`.
      deflation_rank: columns of the exactly deflated top subspace (0: none).
        At t >= 10 the values are dominated by the top 2^DSE eigenvalues: on a
        curved manifold at n = 1000 the error at t = 10 is about 0.02 bits with
        16 columns and 0.002 with the default 64, which cost about 1.6 times as
        much. On n points at most ``n // 2`` columns are used (:meth:`deflation_for`).
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
    num_matvecs: int | None = None
    deflation_rank: int = 64
    probes: str = "rademacher"
    operator: str = "auto"
    block_size: int = 512
    mesh: object = None
    memory_budget: int | None = None

    def matvecs_for(self, indefinite: bool = False, n: int | None = None) -> int:
        """The Lanczos steps run on ``n`` rows: ``num_matvecs``, or by default 20 on a
        positive semi-definite kernel and 40 (at most ``max(n, 20)``) on one that need not be.

        >>> SLQ().matvecs_for(indefinite=True, n=30)
        30
        """
        if self.num_matvecs is not None:
            return self.num_matvecs
        if not indefinite:
            return DEFAULT_MATVECS
        return INDEFINITE_MATVECS if n is None else min(INDEFINITE_MATVECS, max(n, DEFAULT_MATVECS))

    def deflation_for(self, n: int) -> int:
        """The deflation columns used on ``n`` rows: ``min(deflation_rank, n // 2)``."""
        return min(self.deflation_rank, n // 2)

    def __post_init__(self):
        _checks.check_int(self.num_probes, "num_probes", minimum=2)
        if self.num_matvecs is not None:
            _checks.check_int(self.num_matvecs, "num_matvecs", minimum=3)
        _checks.check_int(self.deflation_rank, "deflation_rank", minimum=0)
        _checks.check_int(self.block_size, "block_size", minimum=1)
        _checks.check_choice(self.probes, "probes", PROBES)
        _checks.check_choice(self.operator, "operator", OPERATORS)
        _checks.check_mesh(self.mesh)
        if self.mesh is not None and self.operator == "dense":
            raise ValueError("mesh needs operator='blockwise' (or 'auto'): the dense operator is not sharded")
        _check_budget(self.memory_budget)


SHORTHANDS = {"exact": Exact(), "eigh": Exact(eigensolver="eigh"), "slq": SLQ()}


def as_solver(solver, name: str = "solver"):
    """A solver object from a solver or a shorthand string (``None``: ``Exact()``)."""
    if solver is None:
        return Exact()
    if isinstance(solver, (Exact, SLQ, Nystrom)):
        return solver
    if isinstance(solver, str):
        if solver == "nystrom":
            return Nystrom()
        if solver not in SHORTHANDS:
            raise ValueError(f"{name} must be Exact(...), SLQ(...) or one of {sorted(SHORTHANDS)}, got {solver!r}")
        return SHORTHANDS[solver]
    raise TypeError(
        f"{name} must be jaxdse.Exact(...), jaxdse.SLQ(...) or jaxdse.Nystrom(...), got {type(solver).__name__}"
    )


# ---------------------------------------------------------------- the low-rank solver

LANDMARK_RULES = ("uniform", "kmeans++")
MEDIAN_SAMPLE = 2048  # rows from which sigma="median" is resolved


class LowRankWarning(UserWarning):
    """The Nystrom error indicator is above 0.05 bits: use more landmarks (or the exact solver)."""


class _Fixed:
    """A landmark array held by a static solver: hashable by value, compared by value."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self._hash = hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, _Fixed) and self._hash == other._hash and np.array_equal(self.array, other.array)

    def __repr__(self):
        return f"array(shape={self.array.shape})"


@_static
class Nystrom:
    """Nystrom low-rank DSE with ``num_landmarks`` landmarks (see :mod:`jaxdse.entropy.nystrom`).

    Cost ``O(n m (d + m))`` time and ``O(m^2 + block_size m)`` memory for
    :func:`jaxdse.dse` (two passes over row blocks of the data); DSMI holds the
    factor ``F`` ``[n, 3m/2]`` (class subsets reuse the same landmarks and the
    factor's rows). Its standard error is the indicator of :func:`indicator`.
    The kernel of the landmarks, ``W``, enters through its pseudo-inverse
    square root: eigenvalues of ``W`` below ``m eps`` are dropped, so a
    rank-deficient ``W`` (duplicated landmarks) gives a lower-rank factor, not
    NaN.

    Args:
      num_landmarks: ``m``, from 2 to the number of kept rows (an array of
        landmarks sets it to its row count).
      landmarks: ``"uniform"`` (``m`` kept rows drawn with ``key`` without
        replacement), ``"kmeans++"`` (k-means++ seeding on a uniform sample of
        ``min(n, 4m)`` kept rows) or an array ``[m, d]`` of points in the units of
        ``x`` (no gradient flows to it; not with ``standardize=True``).
      block_size: rows per block of the passes over the data.
      mesh: a ``jax.sharding.Mesh``: the row blocks of the passes over the
        data are split over its devices (all axes flattened) and their sums
        added up, as :class:`SLQ`'s rows are. DSMI's class subsets reuse the
        factor on one device; the streaming functions run on one device.

    Bandwidths: numbers and ``"sqrt_dim"``; ``"median"`` from a uniform sample
    of 2048 kept rows (all rows when fewer: then equal to the exact rule);
    ``"knn"`` raises a ValueError (per-point neighbours need all ``n^2``
    distances). Needs ``key`` unless ``landmarks`` is an array.

    >>> Nystrom(num_landmarks=256).num_landmarks
    256
    """

    num_landmarks: int = 1024
    landmarks: object = "uniform"
    block_size: int = 4096
    mesh: object = None

    def __post_init__(self):
        if isinstance(self.landmarks, str):
            _checks.check_choice(self.landmarks, "landmarks", LANDMARK_RULES)
        elif not isinstance(self.landmarks, _Fixed):
            if not _checks.is_concrete(self.landmarks):
                raise TypeError("landmarks: an array of landmarks must be concrete (not traced under jit)")
            arr = np.asarray(self.landmarks)
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"landmarks must be 'uniform', 'kmeans++' or a finite [m, d] array, got shape {arr.shape}"
                )
            object.__setattr__(
                self, "landmarks", _Fixed(arr.astype(np.float32 if arr.dtype != np.float64 else arr.dtype))
            )
            object.__setattr__(self, "num_landmarks", arr.shape[0])
        _checks.check_int(self.num_landmarks, "num_landmarks", minimum=2)
        _checks.check_int(self.block_size, "block_size", minimum=1)
        _checks.check_mesh(self.mesh)

    @property
    def fixed_landmarks(self):
        """The landmark array ``[m, d]`` (numpy), or None for a rule."""
        return self.landmarks.array if isinstance(self.landmarks, _Fixed) else None

    @property
    def sample_size(self) -> int:
        """Rows kept by the uniform draw (landmarks, k-means++ and median samples are its prefixes)."""
        m = self.num_landmarks
        return max(m, MEDIAN_SAMPLE, 4 * m if self.landmarks == "kmeans++" else 0)

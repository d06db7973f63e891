"""Solvers: how a spectrum, and so an entropy, is computed.

The solver objects :class:`Exact`, :class:`SLQ` and :class:`Nystrom` and the result type
:class:`Estimate` (:mod:`~jaxdse.solvers.objects`); the diffusion operator and
its exact spectrum (:mod:`~jaxdse.solvers.diffusion`); stochastic Lanczos
quadrature (:mod:`~jaxdse.solvers.slq`) on matrix-free operators
(:mod:`~jaxdse.solvers.operators`); the memory budget
(:mod:`~jaxdse.solvers.memory`), sharding over devices
(:mod:`~jaxdse.solvers.sharding`) and the LAPACK wrappers
(:mod:`~jaxdse.solvers._linalg`).

Imports from jaxdse: :mod:`jaxdse._checks` and :mod:`jaxdse.kernels`.
"""

from jaxdse.solvers.diffusion import symmetric_diffusion_operator
from jaxdse.solvers.memory import get_memory_budget, set_memory_budget
from jaxdse.solvers.objects import (
    EIGENSOLVERS,
    OPERATORS,
    PROBES,
    SHORTHANDS,
    SLQ,
    Estimate,
    Exact,
    LowRankWarning,
    Nystrom,
    as_solver,
)
from jaxdse.solvers.sharding import sharded_vmap

__all__ = [
    "EIGENSOLVERS",
    "OPERATORS",
    "PROBES",
    "SHORTHANDS",
    "SLQ",
    "Estimate",
    "Exact",
    "LowRankWarning",
    "Nystrom",
    "as_solver",
    "get_memory_budget",
    "set_memory_budget",
    "sharded_vmap",
    "symmetric_diffusion_operator",
]

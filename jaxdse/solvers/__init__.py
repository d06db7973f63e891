"""Solvers: how a spectrum, and so an entropy, is computed.

The solver objects :class:`Exact` and :class:`SLQ` and the result type
:class:`Estimate` (:mod:`~jaxdse.solvers.objects`); the diffusion operator and
its exact spectrum (:mod:`~jaxdse.solvers.diffusion`); stochastic Lanczos
quadrature (:mod:`~jaxdse.solvers.slq`) on matrix-free operators
(:mod:`~jaxdse.solvers.operators`); the memory budget, sharding over devices and
the LAPACK wrappers they use.

Imports from jaxdse: :mod:`jaxdse._checks` and :mod:`jaxdse.kernels`.
"""

from jaxdse.solvers.objects import EIGENSOLVERS, OPERATORS, PROBES, SHORTHANDS, SLQ, Estimate, Exact, as_solver

__all__ = ["EIGENSOLVERS", "OPERATORS", "PROBES", "SHORTHANDS", "SLQ", "Estimate", "Exact", "as_solver"]

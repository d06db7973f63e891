"""Peer measures of a representation, beside DSE and DSMI.

Each takes points ``[n, d]`` first (one layer's features on a probe set),
settings keyword-only and an optional row ``mask`` ``[n]`` (a masked call equals
the call on the kept rows). All are pure and work eagerly and under
``jax.jit``, ``jax.vmap`` and ``jax.grad``; bad arguments raise before tracing,
and invalid values seen only under ``jit`` give NaN.
:mod:`~jaxdse.metrics.dimension` holds the effective dimensions (RankMe, the
participation ratio, alpha-ReQ), :mod:`~jaxdse.metrics.renyi` the matrix-based
Renyi entropy and mutual information. The probes and the evaluator of every
measure are in :mod:`jaxdse.monitor`.

Imports from jaxdse: :mod:`jaxdse._checks`, :mod:`jaxdse.kernels`, :mod:`jaxdse.solvers`
and :mod:`jaxdse.entropy`.
"""

from jaxdse.metrics.dimension import alpha_req, participation_ratio, rankme
from jaxdse.metrics.renyi import renyi_entropy, renyi_mutual_information

__all__ = ["alpha_req", "participation_ratio", "rankme", "renyi_entropy", "renyi_mutual_information"]

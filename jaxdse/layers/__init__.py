"""Layer-wise DSE profiles of a network's hidden states.

:func:`layerwise` computes DSE (and DSMI with labels) for every layer of a
stack ``[L, B, T, D]`` (or a sequence of ``[B, T, D]`` / ``[N, D]`` arrays) in
one compiled program; :class:`LayerAccumulator` gives the same
:class:`LayerProfile` from batches of a data loader.

Imports from jaxdse: :mod:`jaxdse.solvers`, :mod:`jaxdse.entropy` and
:mod:`jaxdse.mi` (the public estimates and the memory budget).
"""

from jaxdse.layers.profile import LayerProfile, layerwise
from jaxdse.layers.stream import LayerAccumulator

__all__ = ["LayerProfile", "layerwise", "LayerAccumulator"]

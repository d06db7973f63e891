"""Monitoring representations: probes, one evaluator of every measure, training-step helpers.

:mod:`~jaxdse.monitor.probes` holds the kNN and ridge probes,
:mod:`~jaxdse.monitor.evaluator` one pure function of every measure (DSE, DSMI,
the peer metrics and the probes) from the same features, and
:mod:`~jaxdse.monitor.training` the helpers for a training step of one's own
(Flax NNX modules or parameter pytrees; imported on its own, as it needs flax
and optax).

Imports from jaxdse: every subpackage below it (:mod:`jaxdse._checks` up to
:mod:`jaxdse.mi`) and :mod:`jaxdse.metrics`.
"""

from jaxdse.monitor.evaluator import RepresentationMetrics, make_representation_evaluator
from jaxdse.monitor.probes import knn_accuracy, ridge_accuracy

__all__ = ["RepresentationMetrics", "knn_accuracy", "make_representation_evaluator", "ridge_accuracy"]

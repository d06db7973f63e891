"""Monitoring representations: probes, and one evaluator of every measure.

Imports from jaxdse: every subpackage below it (:mod:`jaxdse._checks` up to
:mod:`jaxdse.mi`) and :mod:`jaxdse.metrics`.
"""

from jaxdse.monitor.probes import RepresentationMetrics, knn_accuracy, make_representation_evaluator, ridge_accuracy

__all__ = ["RepresentationMetrics", "knn_accuracy", "make_representation_evaluator", "ridge_accuracy"]

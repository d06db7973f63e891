"""One evaluator of every representation measure from the same features.

:func:`make_representation_evaluator` returns one pure function that computes,
from the same held-out features, DSE, DSMI, RankMe, the participation ratio,
alpha-ReQ, the matrix-based Renyi entropy and mutual information and both
probes; jit it once and ``vmap`` it over a population of networks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from jaxdse import _checks
from jaxdse.entropy.estimators import dse
from jaxdse.metrics.dimension import alpha_req, participation_ratio, rankme
from jaxdse.metrics.renyi import renyi_entropy, renyi_mutual_information
from jaxdse.mi.estimators import dsmi
from jaxdse.monitor.probes import knn_accuracy, ridge_accuracy

__all__ = ["RepresentationMetrics", "make_representation_evaluator"]


class RepresentationMetrics(NamedTuple):
    """Every measure of one set of held-out features (a pytree of arrays).

    Attributes:
      dse: ``DSE(Z)`` in bits.
      dsmi: ``DSMI(Z; Y)`` in bits (subsample estimator).
      rankme: RankMe (effective number of dimensions).
      participation_ratio: participation ratio of the covariance spectrum.
      alpha_req: power-law decay exponent of the covariance spectrum.
      renyi_entropy: matrix-based Renyi entropy ``S_alpha(Z)`` in bits.
      renyi_mi: matrix-based Renyi mutual information ``I_alpha(Z; Y)`` in bits.
      knn_accuracy: k-nearest-neighbour probe accuracy.
      ridge_accuracy: ridge-regression probe accuracy.
    """

    dse: jax.Array
    dsmi: jax.Array
    rankme: jax.Array
    participation_ratio: jax.Array
    alpha_req: jax.Array
    renyi_entropy: jax.Array
    renyi_mi: jax.Array
    knn_accuracy: jax.Array
    ridge_accuracy: jax.Array


def make_representation_evaluator(
    *,
    num_classes: int,
    max_class_size: int,
    sigma=10.0,
    t=1.0,
    renyi_alpha=2.0,
    k: int = 5,
    regularization=1e-3,
    num_repetitions: int = 5,
    fit_range: tuple[int, int | None] = (1, None),
):
    """A pure ``evaluate(z, y, z_train, y_train, key) -> RepresentationMetrics`` of every measure.

    ``z`` ``[m, d]`` are held-out features with labels ``y`` ``[m]``; the probes
    are fitted on ``z_train`` ``[n, d]`` with ``y_train`` and scored on ``z``.
    ``key`` draws DSMI's comparison subsets. All measures share the one forward
    pass that produced ``z``; nothing is jitted here: ``jax.jit(evaluate)``
    compiles once for given shapes, and ``jax.vmap`` maps it over a population
    (on the CPU its decompositions then run one network at a time: see
    :mod:`jaxdse.solvers._linalg`).

    Args:
      num_classes: static number of classes of ``y`` (labels 0..num_classes-1).
      max_class_size: static upper bound on a class's size in ``y`` (DSMI's
        padding; a larger class makes DSMI NaN).
      sigma, t: DSE/DSMI settings (the paper's 10 and 1); ``sigma`` is also the
        Renyi measures' bandwidth.
      renyi_alpha: order of the Renyi measures.
      k: neighbours of the kNN probe; ``regularization``: the ridge probe's.
      num_repetitions: DSMI's random comparison subsets per class.
      fit_range: alpha-ReQ's fitting range (see :func:`jaxdse.metrics.alpha_req`).

    >>> import jax, jax.numpy as jnp
    >>> z = jax.random.normal(jax.random.key(0), (40, 8)); y = jnp.arange(40) % 4
    >>> evaluate = jax.jit(make_representation_evaluator(num_classes=4, max_class_size=10))
    >>> evaluate(z, y, z, y, jax.random.key(1)).rankme.shape
    ()
    """
    for name, value in dict(num_classes=num_classes, max_class_size=max_class_size, k=k).items():
        _checks.check_int(value, name)

    measures = dict(
        dse=lambda z, y, zt, yt, key: dse(z, sigma=sigma, t=t),
        dsmi=lambda z, y, zt, yt, key: dsmi(
            z,
            y,
            key=key,
            sigma=sigma,
            t=t,
            num_repetitions=num_repetitions,
            num_classes=num_classes,
            max_class_size=max_class_size,
        ),
        rankme=lambda z, y, zt, yt, key: rankme(z),
        participation_ratio=lambda z, y, zt, yt, key: participation_ratio(z),
        alpha_req=lambda z, y, zt, yt, key: alpha_req(z, fit_range=fit_range),
        renyi_entropy=lambda z, y, zt, yt, key: renyi_entropy(z, alpha=renyi_alpha, sigma=sigma),
        renyi_mi=lambda z, y, zt, yt, key: renyi_mutual_information(z, y, alpha=renyi_alpha, sigma=sigma),
        knn_accuracy=lambda z, y, zt, yt, key: knn_accuracy(zt, yt, z, y, num_classes=num_classes, k=k),
        ridge_accuracy=lambda z, y, zt, yt, key: ridge_accuracy(
            zt, yt, z, y, num_classes=num_classes, regularization=regularization
        ),
    )

    def evaluate(z, y, z_train, y_train, key):
        values = {}
        for name, measure in measures.items():
            values[name] = measure(z, y, z_train, y_train, key)
            # One measure after another (the next one's inputs wait for this one's value), so that only one
            # measure's n x n work is in flight and in memory at a time.
            z, z_train, _ = jax.lax.optimization_barrier((z, z_train, values[name]))
        return RepresentationMetrics(**values)

    return evaluate

"""The public DSMI estimates, with any solver.

``DSMI(Z; Y) = DSE(Z) - sum_c p(c) DSE(Z | Y = c)``, estimated by
:mod:`jaxdse.mi.engine` (by default against random equal-size subsets, as the
reference package does) from the :class:`~jaxdse.entropy.DiffusionEntropy` of
each class and comparison subset, all with the kernel of the whole set.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxdse import _checks
from jaxdse.entropy import nystrom
from jaxdse.entropy.estimators import check_median, choose_t, entropy_for
from jaxdse.kernels.peers import kernel_affinity
from jaxdse.mi.engine import MutualInformation, as_options, mutual_information
from jaxdse.solvers.objects import Exact, as_solver


def dsmi_terms(
    z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, precomputed=None, standardize=False,
    kernel=None, **options,
) -> MutualInformation:  # fmt: skip
    """:func:`dsmi` with its per-class terms and standard error (a :class:`jaxdse.MutualInformation`).

    Its ``t`` field is the diffusion time of each value; with ``t="auto"``,
    the t chosen on all of ``z``.
    """
    solver = as_solver(solver)
    as_options(options)  # unknown or invalid settings first
    if kernel is not None:  # one kernel on all of z; every subset takes its block
        z = kernel_affinity(kernel, z, sigma=sigma, precomputed=precomputed, name="z")
        sigma, precomputed = 10.0, "affinity"
    if isinstance(t, str) and t == "auto":
        t = choose_t(
            z, sigma=sigma, alpha=alpha, solver=solver, key=key, precomputed=precomputed, standardize=standardize
        )
    z, bandwidth, _ = _checks.check_input(z, sigma, None, precomputed, name="z")
    t, alpha, base = _checks.check_numbers(t, alpha, base)
    if key is not None:
        key = _checks.as_key(key)
    n_check = 2 if isinstance(solver, Exact) else z.shape[0]
    entropy = entropy_for(bandwidth, solver, n_check, z.dtype, key, precomputed, standardize)
    params: tuple = (bandwidth.number, t, alpha, base)
    if isinstance(solver, nystrom.Nystrom):
        entropy = dataclasses.replace(entropy, factored=True)
        params = params + (jax.random.key(0) if key is None else key,)
    check_median(entropy, z, params, None)
    result = mutual_information(z, y, entropy=entropy, params=params, key=key, **options)
    if isinstance(solver, nystrom.Nystrom):
        nystrom.warn_if_coarse(result, base)
    return result._replace(t=jnp.broadcast_to(jnp.asarray(t, result.value.dtype), result.value.shape))


def dsmi(
    z, y, *, key=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0, solver=None, precomputed=None, standardize=False,
    kernel=None, **options,
):  # fmt: skip
    """Diffusion spectral mutual information ``DSMI(Z; Y)`` (units of ``base``; ``t``'s shape).

    ``DSMI = sum_c p(c) [mean_r DSE(Z*_{c,r}) - DSE(Z | Y = c)]`` for the default
    ``estimator="subsample"`` (``R`` random equal-size subsets ``Z*`` per class,
    as the reference package), or ``DSE(Z) - sum_c p(c) DSE(Z | Y = c)`` for
    ``"plugin"``. In expectation 0 when ``Z`` and ``Y`` are independent; bounded
    above by about ``DSE(Z)``. The bandwidth rule is resolved once on all of
    ``z``: every subset uses the kernel of the whole set.

    Args:
      z: ``[n, d]`` representation.
      y: reference for the same n samples: class labels ``[n]`` (integers, text,
        booleans), one-hot rows ``[n, C]``, cluster assignments from
        :func:`jaxdse.cluster_reference`, a continuous scalar ``[n]`` (binned into
        ``num_clusters`` equal-width bins) or continuous vectors ``[n, d']``
        (clustered into ``num_clusters`` groups).
      key: ``jax.random`` key or integer seed; required for ``"subsample"``.
      sigma, t, alpha, base, solver, precomputed, standardize: as in :func:`jaxdse.dse`
        (``t="auto"``: the knee of DSE(Z) against t)
        (a precomputed ``z`` is ``[n, n]``; each subset takes its block); an array ``t``
        ``[*T]`` gives one DSMI per time from the same eigenvalues and subsets.
      kernel: a kernel object in place of ``sigma`` (as in :func:`jaxdse.dse`),
        built once on all of ``z``; every subset takes its block.
      **options: the estimator's settings, :class:`jaxdse.MIOptions`
        (``num_repetitions=5``, ``estimator``, ``comparison``, ``num_clusters``,
        ``num_classes``, ``max_class_size``, ``reference_discrete``,
        ``batch_size``, ``mesh``).

    A class with a single member has conditional entropy 0; a single class
    overall gives exactly 0. Works under ``jit`` (traced labels with
    ``num_classes``/``max_class_size`` given), ``vmap`` over ``sigma``/``t``/``z``/
    ``key``, and ``grad`` with respect to ``z``, for both solvers.

    >>> import numpy as np
    >>> z = np.concatenate([np.zeros((20, 2)), np.ones((20, 2)) * 50]) + np.random.default_rng(0).normal(size=(40, 2))
    >>> y = np.repeat([0, 1], 20)
    >>> round(float(dsmi(z, y, sigma=2.0, estimator="plugin")), 2)
    1.03
    """
    settings = dict(locals())
    options = settings.pop("options")
    return dsmi_terms(settings.pop("z"), settings.pop("y"), **settings, **options).value

"""Other packages' settings, and their own spectral measurements, in jaxdse.

Keyword recipes: each returns the keyword arguments that make
:func:`jaxdse.dse` (and :func:`jaxdse.dsmi`, :func:`jaxdse.eigenvalue_count`)
give the number another package gives::

    jaxdse.dse(x, **jaxdse.recipes.manylatents())
    jaxdse.eigenvalue_count(x, **{**jaxdse.recipes.manylatents(), "t": 500})

* :func:`manylatents` -- manylatents 0.1.8's ``DiffusionSpectralEntropy``;
* :func:`dse_dsmi` -- the authors' reference package ``dse-dsmi`` 1.1;
* :func:`transformer_dispersion` -- sigma = 1, t = 1 on unit-norm rows;
* :func:`phate` -- DSE on PHATE 2.0.0's graph (graphtools 2.1.0's kernel).

Measurements that are not a DSE of jaxdse's operator: :func:`eigenvalue_count`
(manylatents' ``output_mode="eigenvalue_count"``), :func:`phate_vne` and
:func:`phate_t` (PHATE's von Neumann entropy curve and its ``t="auto"``).

PHATE's knee and jaxdse's ``t="auto"``. Both pick a diffusion time at the knee
of an entropy curve, but not the same curve nor the same knee:

* PHATE (``phate/vne.py``) takes the *singular values* of the row-stochastic
  ``P = D^-1 K`` (not its eigenvalues: ``P`` is not symmetric, and its
  singular values differ from the eigenvalues of the symmetric conjugate that
  DSE uses), in nats, at the integer powers ``1, ..., t_max``, and labels the
  entropy of the power ``t + 1`` as ``t`` (``t = 0, ..., t_max - 1``). Its knee
  is the breakpoint of the best two-segment linear fit (least-squares lines on
  either side, the smallest summed absolute error) on a linear t axis; the
  returned label is then used by PHATE as the power of ``P``.
* jaxdse (:func:`jaxdse.choose_t`, :mod:`jaxdse.knee`) takes DSE (the
  eigenvalues of the symmetric operator, in ``base``) on a log-spaced grid
  ``t = 1, 2^(1/4), ..., 1024``, scales both axes to [0, 1] and picks the point
  farthest below the chord joining the ends; a flat curve gives ``t = 1`` and a
  curve with no bend is an error. The two can differ by a large factor on the
  same data; use :func:`phate_t` for PHATE's number.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.entropy.estimators import diffusion_eigenvalues
from jaxdse.kernels.peers import AlphaDecayKernel, KNNKernel

__all__ = [
    "manylatents",
    "dse_dsmi",
    "transformer_dispersion",
    "phate",
    "l2_normalize",
    "eigenvalue_count",
    "phate_vne",
    "phate_t",
]


# ---------------------------------------------------------------- keyword recipes


def manylatents(k: int = 15, alpha: float = 1.0, t=3) -> dict:
    """Keywords that make :func:`jaxdse.dse` equal manylatents' DSE metric.

    Follows ``manylatents/metrics/diffusion_spectral_entropy.py``
    (``DiffusionSpectralEntropy``, manylatents 0.1.8) with its defaults
    ``kernel="knn", k=15, alpha=1.0, t=3``: the kNN kernel
    :class:`jaxdse.KNNKernel`, anisotropy ``alpha`` (1 = Laplace-Beltrami),
    ``p_i = |lambda_i|^t / sum |lambda|^t`` and ``-sum p log2 p`` in bits
    (manylatents adds 2.2e-16 to every ``p_i`` first, which changes the value
    by less than ``n * 1e-14`` bits). manylatents subsamples ``n > 10000``
    rows at random; jaxdse never does.

    For the eigenvalue count, replace ``t`` by manylatents' ``t_high``
    (default 100)::

        jaxdse.eigenvalue_count(x, **{**manylatents(), "t": 500})

    Returns:
      ``{"kernel": KNNKernel(k), "alpha": alpha, "t": t}``.

    >>> sorted(manylatents())
    ['alpha', 'kernel', 't']
    """
    return {"kernel": KNNKernel(k=k), "alpha": float(alpha), "t": t}


def dse_dsmi(sigma: float = 10.0, t=1.0, alpha: float = 0.0) -> dict:
    """Keywords of the authors' reference package, ``dse-dsmi`` 1.1
    (``dse_dsmi/diffusion_spectral_entropy.py``, ``diffusion_spectral_entropy``
    with ``gaussian_kernel_sigma=10, t=1``, no anisotropy): jaxdse's defaults.

    That package subsamples ``n > 10000`` rows at random; jaxdse does not
    (use ``max_n=10000, key=...`` for the same kind of subsample).

    >>> dse_dsmi()
    {'sigma': 10.0, 't': 1.0, 'alpha': 0.0}
    """
    return {"sigma": float(sigma), "t": t, "alpha": float(alpha)}


def transformer_dispersion(sigma: float = 1.0, t=1.0) -> dict:
    """Keywords for DSE of transformer representations as a dispersion measure:
    a fixed bandwidth ``sigma = 1`` and ``t = 1`` on rows scaled to unit
    Euclidean norm (token or sentence embeddings compared by direction).

    Follows the authors' Transformer-Dispersion study
    (``src/motivation/evaluate_transformer_metrics.py``, ``compute_DSE``, in
    the repository ChenLiu-1996/Transformer-Dispersion): each layer's token
    vectors divided by ``|x| + 1e-12``, then ``src/dse/dse.py``'s
    ``diffusion_spectral_entropy(..., gaussian_kernel_sigma=1, t=1)``, the same
    definition as ``dse-dsmi`` 1.1 (bits; it adds 2.2e-16 to every ``p_i``,
    which moves the value by less than ``n * 1e-14`` bits). For every layer
    at once: ``jaxdse.layerwise(hidden_states, normalize="l2", **transformer_dispersion())``.

    The normalisation is a property of the input, not a keyword: normalise the
    rows first with :func:`l2_normalize`::

        jaxdse.dse(jaxdse.recipes.l2_normalize(h), **jaxdse.recipes.transformer_dispersion())

    On unit-norm rows ``|x_i - x_j|^2 = 2 - 2 cos(x_i, x_j)``, so ``sigma = 1``
    gives ``G_ij = exp(cos_ij - 1)``.

    >>> transformer_dispersion()
    {'sigma': 1.0, 't': 1.0, 'alpha': 0.0}
    """
    return {"sigma": float(sigma), "t": t, "alpha": 0.0}


def phate(knn: int = 5, decay: float = 40, thresh: float = 1e-4) -> dict:
    """Keywords for DSE on PHATE's graph: PHATE 2.0.0 (``phate/phate.py``, its
    defaults ``knn=5, decay=40`` and ``thresh=1e-4``) builds graphtools 2.1.0's
    alpha-decay kernel (:class:`jaxdse.AlphaDecayKernel`) with no anisotropy,
    and reports entropies in nats (``base = e``).

    This is DSE (eigenvalues of the diffusion operator) of PHATE's kernel, not
    PHATE's von Neumann entropy, which uses singular values: for that number
    use :func:`phate_vne`.

    >>> sorted(phate())
    ['alpha', 'base', 'kernel']
    """
    return {"kernel": AlphaDecayKernel(knn=knn, decay=decay, thresh=thresh), "alpha": 0.0, "base": math.e}


def l2_normalize(x):
    """Rows of ``x`` ``[n, d]`` divided by their Euclidean norm (a zero row stays 0).

    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    x = _checks.as_points(x, "x", min_rows=1)
    norm = jnp.linalg.norm(x, axis=1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1.0)


# ---------------------------------------------------------------- measurements


def eigenvalue_count(x, *, t, threshold=1e-6, sigma=10.0, kernel=None, alpha=0.0, mask=None, solver=None):
    """Number of diffusion eigenvalues whose ``|lambda|^t`` stays above ``threshold``.

    ``count = #{i : |lambda_i|^t > threshold}`` over the ``n`` eigenvalues of the
    diffusion operator (:func:`jaxdse.diffusion_eigenvalues`, with ``sigma`` or
    ``kernel`` and ``alpha`` as in :func:`jaxdse.dse`). As manylatents 0.1.8's
    ``DiffusionSpectralEntropy(output_mode="eigenvalue_count")``
    (``manylatents/metrics/diffusion_spectral_entropy.py``), whose ``t_high``
    is ``t`` here and ``numerical_floor`` is ``threshold``; the comparison is
    strict, as there. At large ``t`` it counts the slowly mixing components
    (one per well-separated cluster). Rows that ``mask`` drops are not counted.

    In float32 the eigensolver's noise floor is about 1e-7: with ``t`` near 1
    and ``threshold`` near 1e-6, noise eigenvalues can be counted; use x64 there.

    Args:
      x: ``[n, d]`` points.
      t: diffusion time > 0 (a scalar).
      threshold: in (0, 1).

    Returns:
      A jax integer scalar (manylatents returns the same number as a float).

    Raises:
      ValueError naming ``t`` or ``threshold``; the errors of :func:`jaxdse.dse`.

    >>> import numpy as np
    >>> x = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 100.0)]) + np.random.default_rng(0).normal(size=(40, 2))
    >>> int(eigenvalue_count(x, t=100, kernel=KNNKernel(k=10), alpha=1.0))  # two clusters
    2
    """
    t = _checks.check_positive(t, "t")
    threshold = _checks.check_positive(threshold, "threshold")
    if _checks.is_concrete(threshold) and not float(threshold) < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    lam = diffusion_eigenvalues(x, sigma=sigma, alpha=alpha, mask=mask, solver=solver, kernel=kernel)
    return _count(lam, jnp.asarray(t, lam.dtype), jnp.asarray(threshold, lam.dtype))


@jax.jit
def _count(lam, t, threshold):
    count = jnp.sum(jnp.abs(lam) ** t > threshold)
    ok = jnp.all(jnp.isfinite(lam)) & (t > 0) & (threshold > 0) & (threshold < 1)
    return jnp.where(ok, count, -1)


def phate_vne(x, knn: int = 5, decay: float = 40, t_max: int = 100, *, thresh: float = 1e-4):
    """PHATE's von Neumann entropy curve ``[t_max]`` (nats) of the points ``x`` ``[n, d]``.

    As PHATE 2.0.0 (``phate/vne.py``, ``compute_von_neumann_entropy``, on
    ``PHATE(knn, decay).diff_op``): ``P = D^-1 K`` with ``K`` graphtools'
    alpha-decay kernel (:class:`jaxdse.AlphaDecayKernel`), ``s`` the singular
    values of ``P``, and for ``t = 0, ..., t_max - 1``::

        H[t] = -sum_i p_i ln p_i,   p_i = s_i^(t+1) / sum_j s_j^(t+1)

    (entry ``t`` is the power ``t + 1``: PHATE's labelling). PHATE adds 2.2e-16
    to every ``p_i``; the difference is below ``n * 1e-14`` nats.

    PHATE first reduces data with more than 100 features to 100 principal
    components (``n_pca=100``) and uses landmarks for ``n > 2000``; this
    function does neither: pass the PCA-reduced points, and ``n <= 2000``,
    for PHATE's number. Jittable (``knn``, ``decay``, ``t_max``, ``thresh``
    are static).

    Raises:
      ValueError naming ``knn``, ``decay``, ``thresh`` or ``t_max``.

    >>> import numpy as np
    >>> h = phate_vne(np.random.default_rng(0).normal(size=(60, 2)), t_max=10)
    >>> h.shape, bool(h[0] > h[-1])
    ((10,), True)
    """
    t_max = _checks.check_int(t_max, "t_max", minimum=1)
    G = AlphaDecayKernel(knn=knn, decay=decay, thresh=thresh).affinity(x)
    return _vne(G, t_max)


def _vne_impl(G, t_max):
    P = G / jnp.sum(G, axis=1, keepdims=True)
    s = jnp.linalg.svd(P, compute_uv=False)
    log_s = jnp.where(s > 0, jnp.log(jnp.where(s > 0, s, 1.0)), -jnp.inf)
    powers = jnp.arange(1, t_max + 1, dtype=G.dtype)[:, None]
    logits = powers * log_s[None, :]
    log_p = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
    p = jnp.exp(log_p)
    return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=1)


_vne = jax.jit(_vne_impl, static_argnames=("t_max",))


def _two_line_knee(y) -> int:
    """Index of the knee of ``y`` ``[T]`` on ``x = 0..T-1``, PHATE's ``find_knee_point``.

    For each breakpoint ``b`` in ``1..T-2``: a least-squares line through the
    points ``0..b`` and one through ``b-1..T-1``; the error is the summed
    absolute residual of the first on ``0..b`` and of the second on
    ``b..T-1``. The knee is the ``b`` of least error (the first on ties).
    """
    y = np.asarray(y, np.float64)
    T = y.shape[0]
    x = np.arange(T, dtype=np.float64)

    def fit(xs, ys):
        m = xs.shape[0]
        sx, sy, sxx, sxy = xs.sum(), ys.sum(), (xs * xs).sum(), (xs * ys).sum()
        det = m * sxx - sx * sx
        return (m * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det

    errors = []
    for b in range(1, T - 1):
        m1, c1 = fit(x[: b + 1], y[: b + 1])
        m2, c2 = fit(x[b - 1 :], y[b - 1 :])
        err = np.abs(m1 * x[: b + 1] + c1 - y[: b + 1]).sum() + np.abs(m2 * x[b:] + c2 - y[b:]).sum()
        errors.append(err)
    return int(np.argmin(errors)) + 1


def phate_t(x, knn: int = 5, decay: float = 40, t_max: int = 100, *, thresh: float = 1e-4) -> int:
    """The diffusion time PHATE 2.0.0's ``t="auto"`` picks for the points ``x`` ``[n, d]``.

    ``find_knee_point`` (``phate/vne.py``) of :func:`phate_vne` against the
    labels ``t = 0, ..., t_max - 1``: the breakpoint of the best two-segment
    linear fit (see the module docstring for how it differs from jaxdse's
    ``t="auto"``). PHATE then diffuses with ``P^t`` for this ``t``. Same
    conditions on ``n`` and ``d`` as :func:`phate_vne`; needs ``t_max >= 3``.

    Returns:
      A Python int in ``[1, t_max - 2]``.

    Raises:
      ValueError naming ``t_max`` (below 3) and the errors of :func:`phate_vne`.

    >>> import numpy as np
    >>> 1 <= phate_t(np.random.default_rng(0).normal(size=(60, 2))) <= 98
    True
    """
    t_max = _checks.check_int(t_max, "t_max", minimum=3)
    return _two_line_knee(np.asarray(phate_vne(x, knn, decay, t_max, thresh=thresh)))

"""Diffusion spectral entropy: points -> diffusion spectrum -> entropy."""

from __future__ import annotations

from jaxdse import _checks
from jaxdse.diffusion import METHODS, _check_operator_args, _diffusion_eigenvalues
from jaxdse.entropy import entropy_of_spectrum


def dse(
    x,
    *,
    sigma=10.0,
    t=1.0,
    alpha=0.0,
    base=2.0,
    mask=None,
    method: str = "auto",
    key=None,
    max_n: int | None = None,
    mesh=None,
    num_probes: int | None = None,
    num_matvecs: int | None = None,
    block_size: int | None = None,
):
    """Diffusion spectral entropy of the points ``x`` ``[n, d]``.

    ``DSE = -sum_i p_i log_b p_i`` with ``p_i = |lambda_i|^t / sum_j |lambda_j|^t``
    and ``lambda`` the eigenvalues of the diffusion operator built from Gaussian
    affinities of bandwidth ``sigma`` (SPEC section 1). With the defaults
    (``sigma=10, t=1, alpha=0, base=2``) it equals
    ``dse_dsmi.diffusion_spectral_entropy(x)`` for ``n <= 10000`` (the reference
    subsamples larger sets; this function never subsamples).

    Args:
      x: ``[n, d]`` points, e.g. one layer's activations on a probe set.
      sigma: a positive number (traced: sweeps compile once), or a rule
        ``"median"``, ``"sqrt_dim"``, ``"knn"`` / ``"knn:K"``.
      t: diffusion time > 0; an array of times gives one entropy per time from a
        single eigendecomposition.
      alpha: anisotropy exponent in [0, 1].
      base: log base; 2 gives bits (default), ``e`` nats.
      mask: optional ``[n]`` bool; the result equals ``dse(x[mask])``.
      method: ``"auto"``, ``"tridiagonal"`` or ``"eigh"`` (exact, see
        :func:`jaxdse.diffusion_eigenvalues`), or ``"slq"``: the matrix-free
        stochastic estimate of :func:`jaxdse.slq.dse_slq` (needs ``key``; that
        function also returns its standard error).
      key: ``jax.random`` key, needed by ``method="slq"`` and by ``max_n``.
      max_n: explicit subsampling, off by default: if ``n > max_n``, use
        ``max_n`` rows drawn uniformly without replacement with ``key`` (the
        reference package silently subsamples to 10000; this never does).
      mesh, num_probes, num_matvecs, block_size: settings of ``method="slq"``
        (see :func:`jaxdse.slq.dse_slq`); ``None`` means its defaults.

    Returns:
      Scalar entropy in units of ``base`` (``t``'s shape if t is an array);
      ``0 <= DSE <= log_b n``.

    Raises:
      TypeError/ValueError naming the argument for bad input (checked before
      tracing), e.g. ``method="slq"`` without ``key`` or slq settings with an
      exact method; MemoryError when the dense ``n x n`` computation of an exact
      method exceeds :func:`jaxdse.get_memory_budget`.

    Transformations: works under ``jax.jit`` (``method``, ``mask``'s presence and a
    string ``sigma`` are static), ``jax.vmap`` over ``x``, ``mask``, ``sigma``,
    ``t``, ``alpha``, and ``jax.grad`` with respect to ``x`` (and ``sigma``, ``t``).
    Under ``jit``, where values cannot be checked, non-finite ``x`` or invalid
    numeric settings give NaN, never a plausible-looking number.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(20.0).reshape(10, 2) * 100.0  # points far apart
    >>> round(float(dse(x)), 4)  # = log2(10)
    3.3219
    """
    _checks.check_choice(method, "method", METHODS + ("slq",))
    slq_settings = dict(num_probes=num_probes, num_matvecs=num_matvecs, block_size=block_size)
    if method == "slq":
        from jaxdse.slq import dse_slq

        given = {name: value for name, value in slq_settings.items() if value is not None}
        return dse_slq(x, key=key, sigma=sigma, t=t, alpha=alpha, base=base, mask=mask, max_n=max_n, mesh=mesh, **given).value
    for name, value in dict(slq_settings, mesh=mesh).items():
        if value is not None:
            raise ValueError(f"{name} is a setting of method='slq', got method={method!r}")
    if max_n is not None:
        from jaxdse.slq import check_max_n, subsample

        check_max_n(max_n, key, mask)
        x, _ = subsample(_checks.as_points(x, "x"), key, max_n)
    x, bandwidth, alpha, mask = _check_operator_args(x, sigma, alpha, mask, method)
    t = _checks.check_positive(t, "t", allow_array=True)
    base = _checks.check_base(base)
    lam = _diffusion_eigenvalues(x, bandwidth, alpha, mask, method, sort=False)
    return entropy_of_spectrum(lam, t, base)

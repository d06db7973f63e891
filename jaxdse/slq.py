"""Matrix-free DSE by stochastic Lanczos quadrature, with a standard error.

DSE needs two spectral sums of the diffusion operator, ``Z = sum_i |lambda_i|^t``
and ``H = sum_i |lambda_i|^t log|lambda_i|^t``; then ``DSE = (log Z - H / Z) / log b``
(SPEC section 1, steps 4-5, written with sums instead of the full spectrum).
Both are traces of matrix functions of the symmetric ``S = D^-1/2 K D^-1/2``,
estimated here from one set of Lanczos runs (:func:`matfree.decomp.tridiag_sym`):

1. The known eigenpair ``(1, v)`` is removed exactly: ``A = S - v v^T``,
   ``Z = 1 + tr f(A)``, ``H = tr g(A)`` (``f(0) = g(0) = g(1) = 0``).
2. Low-rank deflation (Hutch++): an orthonormal ``Q`` ``[n, k]`` for the top
   of ``A``'s spectrum comes from one power step of randomized subspace
   iteration; ``tr h(A) = tr(Q^T h(A) Q) + tr(P h(A) P)`` with ``P = I - Q Q^T - v v^T``.
3. Each quadratic form ``u^T h(A) u`` (columns of ``Q`` and projected probes
   ``P omega``) is quadrature on Lanczos' tridiagonal matrix ``T``:
   ``|u|^2 sum_j (e_1^T y_j)^2 h(theta_j)`` over ``T``'s eigenpairs. Gauss rules
   underestimate ``x log x`` (the ``H`` integrand, singular at 0 for ``t = 1``)
   and Gauss-Radau rules with a node at 0 overestimate it; the estimate is the
   midpoint of the two, from the same ``m`` steps.
4. Control variates: ``tr P A^0 P``, ``tr P A P`` and ``tr P A^2 P`` are known
   exactly (``tr A`` and ``|A|_F^2`` are cheap), so each probe's ``h`` is
   replaced by ``h - c_0 - c_1 lambda - c_2 lambda^2`` plus its exact trace, with
   ``c`` the least-squares fit of ``h`` on the probes' quadrature nodes. This
   removes most of the probe-to-probe variance for the flat, clustered spectra
   that diffusion operators have.

The standard error combines, in quadrature, the probe-to-probe spread of the
per-probe DSE linearisation (delta method: ``dDSE = ((1/Z + H/Z^2) dZ - dH/Z) /
log b``, divided by ``sqrt(num_probes)``) and the quadrature error bound, half
the gap between the Gauss and Gauss-Radau estimates. ``value +- 2 * stderr`` is
the error bar.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxdse.affinity import HIGHEST
import numpy as np
from matfree import decomp

from jaxdse import _checks
from jaxdse.affinity import Bandwidth, check_knn_k, parse_bandwidth
from jaxdse.diffusion import dense_bytes, get_memory_budget
from jaxdse.operators import blockwise_operator, dense_operator
from jaxdse.sharding import check_mesh, num_shards, replicate_input

PROBES = ("rademacher", "gaussian")
OPERATORS = ("auto", "dense", "blockwise")

DEFAULT_NUM_PROBES = 16
DEFAULT_NUM_MATVECS = 20
DEFAULT_DEFLATION_RANK = 16
DEFAULT_BLOCK_SIZE = 512


class SLQResult(NamedTuple):
    """A stochastic DSE estimate and the settings that produced it.

    ``value`` and ``stderr`` have ``t``'s shape, in units of ``base``.
    """

    value: jax.Array
    stderr: jax.Array
    num_probes: int
    num_matvecs: int
    deflation_rank: int
    probes: str
    operator: str
    block_size: int
    n: int


def dse_slq(
    x,
    *,
    key,
    sigma=10.0,
    t=1.0,
    alpha=0.0,
    base=2.0,
    mask=None,
    num_probes: int = DEFAULT_NUM_PROBES,
    num_matvecs: int = DEFAULT_NUM_MATVECS,
    deflation_rank: int = DEFAULT_DEFLATION_RANK,
    probes: str = "rademacher",
    operator: str = "auto",
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_n: int | None = None,
    mesh=None,
) -> SLQResult:
    """Diffusion spectral entropy of ``x`` ``[n, d]`` by stochastic Lanczos quadrature.

    Estimates ``DSE = (log Z - H / Z) / log(base)`` with
    ``Z = sum_i |lambda_i|^t`` and ``H = sum_i |lambda_i|^t log|lambda_i|^t`` over
    the diffusion operator's eigenvalues (see the module docstring), without an
    eigendecomposition and, with the blockwise operator, without any ``n x n``
    array. Cost: about ``num_matvecs * (num_probes + deflation_rank)`` operator
    columns, i.e. ``num_matvecs`` products with ``[n, num_probes + deflation_rank]``.

    Args:
      x: points ``[n, d]``.
      key: a ``jax.random`` key (required): draws the probes, the deflation
        subspace and, with ``max_n``, the subsample.
      sigma, t, alpha, base, mask: as in :func:`jaxdse.dse`. The blockwise operator
        needs a fixed number or ``"sqrt_dim"`` for ``sigma``.
      num_probes: random probe vectors (>= 2; the standard error needs two).
      num_matvecs: Lanczos steps per probe (quadrature nodes), >= 3.
      deflation_rank: columns of the deflated top subspace (0 switches it off).
      probes: ``"rademacher"`` (default) or ``"gaussian"``.
      operator: ``"dense"`` (``S`` kept in memory), ``"blockwise"`` (row blocks
        recomputed from ``x``), or ``"auto"``: dense when its ``n x n`` arrays fit
        :func:`jaxdse.get_memory_budget`, blockwise otherwise (always blockwise
        with a ``mesh``).
      block_size: rows per block of the blockwise operator.
      max_n: if set and ``n > max_n``, estimate on ``max_n`` rows drawn uniformly
        without replacement with ``key`` (explicit subsampling, for parity with
        the reference package, which subsamples to 10000). Off by default.
      mesh: a ``jax.sharding.Mesh`` (any axis types; all axes are used,
        flattened); the blockwise products split the rows of ``x`` over its
        devices, and the result is replicated on all of them.

    Returns:
      :class:`SLQResult` with ``value`` and ``stderr`` (``t``'s shape, units of
      ``base``) and the settings used.

    Raises:
      TypeError/ValueError naming the argument (missing ``key``, bad counts,
      unknown ``probes``/``operator``, a data-dependent ``sigma`` rule with the
      blockwise operator); MemoryError for ``operator="dense"`` above the budget.

    Works under ``jax.jit`` (all but ``x``, ``key``, ``sigma``, ``t``, ``alpha``,
    ``base`` static) and ``jax.vmap`` over ``key``. Gradients are not supported:
    differentiating raises ``NotImplementedError`` (use ``method="auto"``).

    >>> import jax
    >>> from jaxdse.slq import dse_slq
    >>> x = jax.random.normal(jax.random.key(0), (300, 8))
    >>> r = dse_slq(x, key=jax.random.key(1), sigma=3.0)
    >>> r.value.shape, r.operator, r.num_probes
    ((), 'dense', 16)
    """
    settings = check_slq_args(
        x, key, sigma, alpha, mask, num_probes, num_matvecs, deflation_rank, probes, operator, block_size, max_n, mesh
    )
    x, mask, key, bandwidth, alpha, operator = settings
    t = _checks.check_positive(t, "t", allow_array=True)
    base = _checks.check_base(base)
    value, stderr = _dse_slq(
        x,
        key,
        bandwidth,
        alpha,
        mask,
        t,
        base,
        num_probes=num_probes,
        num_matvecs=num_matvecs,
        deflation_rank=deflation_rank,
        probes=probes,
        operator=operator,
        block_size=block_size,
        mesh=mesh,
    )
    return SLQResult(value, stderr, num_probes, num_matvecs, deflation_rank, probes, operator, block_size, x.shape[0])


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_slq_args(
    x, key, sigma, alpha, mask, num_probes, num_matvecs, deflation_rank, probes, operator, block_size, max_n, mesh
):
    """Validate the arguments of :func:`dse_slq`; subsample with ``max_n``.

    Returns ``(x, mask, key, bandwidth, alpha, operator)`` with ``operator``
    resolved to ``"dense"`` or ``"blockwise"``.
    """
    if key is None:
        raise ValueError("method='slq' needs key=jax.random.key(...): it draws random probe vectors")
    if not isinstance(key, jax.Array) or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,))
    ):
        raise TypeError(f"key must be a jax.random key, got {type(key).__name__}")
    x = _checks.as_points(x, "x")
    n = x.shape[0]
    mask = _checks.check_mask(mask, n)
    _positive_int(num_probes, "num_probes", 2)
    _positive_int(num_matvecs, "num_matvecs", 3)
    _positive_int(deflation_rank, "deflation_rank", 0)
    _positive_int(block_size, "block_size", 1)
    _checks.check_choice(probes, "probes", PROBES)
    _checks.check_choice(operator, "operator", OPERATORS)
    bandwidth = parse_bandwidth(sigma)
    alpha = _checks.check_alpha(alpha)
    check_mesh(mesh)
    x = replicate_input(x, mesh)
    if max_n is not None:
        check_max_n(max_n, key, mask)
        x, key = subsample(x, key, max_n)
        n = x.shape[0]
    n_kept = n if mask is None or not _checks.is_concrete(mask) else int(jnp.sum(mask))
    check_knn_k(bandwidth, n_kept)
    if num_matvecs > n or deflation_rank >= n:
        raise ValueError(
            f"num_matvecs={num_matvecs} and deflation_rank={deflation_rank} must stay below n={n}; "
            "for so few points use method='auto' (exact)"
        )
    fits = dense_bytes(n, x.dtype, "auto") <= get_memory_budget()
    if operator == "auto":
        operator = "dense" if fits and mesh is None else "blockwise"
    if operator == "dense" and not fits:
        from jaxdse.diffusion import check_memory

        check_memory(n, x.dtype, "auto", what="the dense operator")
    if operator == "blockwise" and bandwidth.rule not in ("fixed", "sqrt_dim"):
        raise ValueError(
            f"sigma={sigma!r}: the blockwise operator needs a fixed number or 'sqrt_dim' (the '{bandwidth.rule}' "
            "rule needs all pairwise distances); compute the bandwidth on a subset and pass it as a number"
        )
    if operator == "dense" and mesh is not None:
        raise ValueError("mesh needs operator='blockwise' (or 'auto'): the dense operator is not sharded")
    return x, mask, key, bandwidth, alpha, operator


def check_max_n(max_n, key, mask):
    """``max_n`` is an integer >= 2, comes with a ``key`` and without a ``mask``."""
    _positive_int(max_n, "max_n", 2)
    if key is None:
        raise ValueError("max_n needs key=jax.random.key(...) to draw the subsample")
    if mask is not None:
        raise ValueError("max_n and mask cannot be combined: subsample the kept rows yourself")


def subsample(x, key, max_n: int):
    """``max_n`` rows of ``x`` drawn uniformly without replacement (all if fewer).

    Returns ``(rows, key)`` with a fresh key for what follows.
    """
    n = x.shape[0]
    if n <= max_n:
        return x, key
    key, sub = jax.random.split(key)
    idx = jax.random.choice(sub, n, (max_n,), replace=False)
    return x[jnp.sort(idx)], key


def _pad_rows(x, mask, multiple: int):
    n = x.shape[0]
    keep = jnp.ones(n, bool) if mask is None else mask
    pad = (-n) % multiple
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)])
        keep = jnp.concatenate([keep, jnp.zeros(pad, bool)])
    return x, keep


def _dse_slq(x, key, bandwidth, alpha, mask, t, base, **static):
    """Unchecked core of :func:`dse_slq`: ``(value, stderr)``, each of ``t``'s shape."""
    # Compiled once per shape and static configuration (eager calls cost one
    # dispatch); inside a user's jit this is inlined.
    sigma_value = bandwidth.value if bandwidth.rule == "fixed" else None
    knn = bandwidth.value if bandwidth.rule == "knn" else None
    return _dse_slq_compiled(x, key, sigma_value, alpha, mask, t, base, rule=bandwidth.rule, knn=knn, **static)


@partial(
    jax.jit,
    static_argnames=(
        "rule", "knn", "num_probes", "num_matvecs", "deflation_rank", "probes", "operator", "block_size", "mesh"
    ),
)
def _dse_slq_compiled(
    x, key, sigma_value, alpha, mask, t, base, *, rule, knn,
    num_probes, num_matvecs, deflation_rank, probes, operator, block_size, mesh,
):
    bandwidth = Bandwidth(rule, sigma_value if rule == "fixed" else knn)
    finite = jnp.all(jnp.isfinite(x))
    x = jnp.where(finite, x, 0.0)
    num_rows = x.shape[0]
    if operator == "dense":
        keep = jnp.ones(x.shape[0], bool) if mask is None else mask
        op = dense_operator(x, bandwidth, alpha, keep)
    else:
        ndev = num_shards(mesh)
        block_size = min(block_size, -(-x.shape[0] // ndev))
        x, keep = _pad_rows(x, mask, block_size * ndev)
        op = blockwise_operator(x, bandwidth, alpha, keep, block_size=block_size, mesh=mesh)
    # matfree's Lanczos (its recurrence coefficients and full reorthogonalisation)
    # and the control-variate fit use plain matmuls: full float32 for them too,
    # not the TF32/bf16 passes an accelerator may use by default.
    with jax.default_matmul_precision("highest"):
        nodes, weights, known = lanczos_nodes(
            op,
            key,
            num_probes=num_probes,
            num_matvecs=num_matvecs,
            deflation_rank=deflation_rank,
            probes=probes,
            num_rows=num_rows,
        )
        t = jnp.asarray(t, x.dtype)
        value, stderr = jax.vmap(lambda s: _entropy_and_error(nodes, weights, known, s))(t.reshape(-1))
    log_base = jnp.log(jnp.asarray(base, x.dtype))
    value, stderr = value / log_base, stderr / log_base
    ok = finite & (t > 0).all() & (jnp.asarray(alpha) >= 0) & (jnp.asarray(alpha) <= 1)
    value = _no_gradient(jnp.where(ok, value, jnp.nan).reshape(t.shape))
    stderr = jnp.where(ok, stderr, jnp.nan).reshape(t.shape)
    return value, stderr


class _Known(NamedTuple):
    """Exact traces of ``P A^j P`` (j = 0, 1, 2) for the control variates."""

    moments: jax.Array  # [3]
    num_deflated: int


def lanczos_nodes(
    op, key, *, num_probes: int, num_matvecs: int, deflation_rank: int, probes: str, num_rows: int | None = None
):
    """Gauss-quadrature nodes and weights of ``A``'s spectral measure per vector.

    Returns ``(nodes, weights, known)``: ``nodes``/``weights`` ``[2, k + p, m]``
    (Gauss and Gauss-Radau rules, see :func:`_quadrature`; the first
    ``k = deflation_rank`` rows for the deflation columns ``Q``, then the
    ``p = num_probes`` projected probes; weights sum to each vector's squared
    norm), and the exact moments of the projected operator. Random vectors are
    drawn for the first ``num_rows`` rows (default all) and zero below, so that
    padding rows for blocks or devices leaves the draws unchanged.
    """
    n = op.v.shape[0]
    num_rows = n if num_rows is None else num_rows

    def draw(sampler, k, cols):
        return jnp.pad(sampler(k, (num_rows, cols), dtype), ((0, n - num_rows), (0, 0)))

    dtype = op.v.dtype
    keep = op.keep.astype(dtype)
    key_q, key_p = jax.random.split(key)
    v = op.v

    def project_v(U):
        return U - v[:, None] * jnp.matmul(v, U, precision=HIGHEST)[None, :]

    moments = jnp.stack([jnp.sum(keep) - 1.0, op.trace, op.frobenius_sq])
    if deflation_rank:
        omega = draw(jax.random.normal, key_q, deflation_rank) * keep[:, None]
        Y = op.matmat(project_v(omega))
        Q = jnp.linalg.qr(op.matmat(jnp.linalg.qr(Y)[0]))[0]
        AQ = op.matmat(Q)
        moments = moments - jnp.stack([deflation_rank, jnp.sum(Q * AQ), jnp.sum(AQ * AQ)])

        def project(U):
            return project_v(U - jnp.matmul(Q, jnp.matmul(Q.T, U, precision=HIGHEST), precision=HIGHEST))

    else:
        Q = jnp.zeros((n, 0), dtype)
        project = project_v
    if probes == "rademacher":
        omega = draw(jax.random.rademacher, key_p, num_probes)
    else:
        omega = draw(jax.random.normal, key_p, num_probes)
    G = project(omega * keep[:, None])
    U = jnp.concatenate([Q, G], axis=1)
    nodes, weights = _quadrature(op.matmat, U, num_matvecs)
    return nodes, weights, _Known(moments, deflation_rank)


def _quadrature(matmat, U, num_matvecs: int):
    """Lanczos Gauss quadrature for each column of ``U`` ``[n, c]``.

    Returns ``(nodes, weights)``, each ``[2, c, m]`` for ``m = num_matvecs``: the
    ``(m-1)``-point Gauss rule (padded with a zero-weight node) and the ``m``-point
    Gauss-Radau rule with a node fixed at 0, both from one ``m``-step Lanczos run.
    """
    tridiag = decomp.tridiag_sym(num_matvecs, materialize=True, reortho="full", custom_vjp=False)

    def one(u):
        norm = jnp.linalg.norm(u)
        safe = jnp.where(norm > 0, norm, 1.0)
        result = tridiag(lambda w: matmat(w[:, None])[:, 0], u / safe)
        # Gauss on the leading (m-1) x (m-1) block; Gauss-Radau adds one node
        # fixed at 0 (Golub & Meurant) using the last Lanczos coefficient. For
        # g(x) = x log x, whose even derivatives are > 0 and odd ones < 0 on
        # (0, 1], Gauss underestimates and Gauss-Radau overestimates u^T g(A) u.
        J_full = result.J_small
        m = J_full.shape[0] - 1
        J, beta = J_full[:m, :m], J_full[m, m - 1]
        theta, Y = jnp.linalg.eigh(J)
        # (J^-1)_mm from J's eigenpairs; guard near-zero Ritz values.
        floor = jnp.finfo(J.dtype).eps * jnp.max(jnp.abs(theta))
        theta_safe = jnp.where(jnp.abs(theta) > floor, theta, jnp.where(theta < 0, -floor, floor))
        delta_m = beta**2 * jnp.sum(Y[-1, :] ** 2 / theta_safe)
        J_radau = J_full.at[m, m].set(delta_m)
        theta_r, Y_r = jnp.linalg.eigh(J_radau)
        nodes = jnp.stack([jnp.pad(theta, (0, 1)), theta_r])
        weights = jnp.stack([jnp.pad(Y[0, :] ** 2, (0, 1)), Y_r[0, :] ** 2]) * norm**2
        return nodes, weights

    # vmap turns the matvecs of all columns into one product with [n, c].
    nodes, weights = jax.vmap(one, in_axes=1)(U)
    return jnp.swapaxes(nodes, 0, 1), jnp.swapaxes(weights, 0, 1)


def _powers(theta, t):
    """``f = |theta|^t`` and ``g = f log f``, 0 (with zero gradient) at theta = 0."""
    a = jnp.abs(theta)
    nonzero = a > 0
    log_f = t * jnp.log(jnp.where(nonzero, a, 1.0))
    f = jnp.where(nonzero, jnp.exp(log_f), 0.0)
    return f, jnp.where(nonzero, f * log_f, 0.0)


def _entropy_and_error(nodes, weights, known: _Known, t):
    """DSE (nats) midway between the Gauss and Gauss-Radau rules; error: probe spread and half their gap."""
    gauss, sampling = _entropy_from_nodes(nodes[0], weights[0], known, t)
    radau, _ = _entropy_from_nodes(nodes[1], weights[1], known, t)
    return 0.5 * (gauss + radau), jnp.sqrt(sampling**2 + (0.5 * (gauss - radau)) ** 2)


def _entropy_from_nodes(nodes, weights, known: _Known, t):
    """DSE in nats and its standard error, for one scalar ``t``."""
    k = known.num_deflated
    f, g = _powers(nodes, t)
    fw, gw = jnp.sum(weights * f, axis=1), jnp.sum(weights * g, axis=1)
    z_top, h_top = jnp.sum(fw[:k]), jnp.sum(gw[:k])
    th, w = nodes[k:], weights[k:]
    f_p, g_p = _control_variates(th, w, f[k:], g[k:], fw[k:], gw[k:], known.moments)
    z = 1.0 + z_top + jnp.mean(f_p)
    h = h_top + jnp.mean(g_p)
    value = jnp.log(z) - h / z
    per_probe = (1.0 / z + h / (z * z)) * f_p - g_p / z
    p = per_probe.shape[0]
    stderr = jnp.std(per_probe, ddof=1) / math.sqrt(p)
    return value, stderr


def _control_variates(theta, w, f, g, fw, gw, moments):
    """Per-probe ``h`` minus its fitted quadratic in ``theta``, plus that quadratic's exact trace."""
    scale = jnp.max(jnp.abs(theta))
    scale = jnp.where(scale > 0, scale, 1.0)
    s = theta / scale
    basis = jnp.stack([jnp.ones_like(s), s, s * s], axis=-1)  # [p, m, 3]
    x = jnp.einsum("pm,pmc->pc", w, basis)  # per-probe moments
    mu = moments * jnp.stack([1.0, 1.0 / scale, 1.0 / (scale * scale)])
    sw = jnp.sqrt(w).reshape(-1)
    B = basis.reshape(-1, 3) * sw[:, None]
    col = jnp.sqrt(jnp.sum(B * B, axis=0))
    col = jnp.where(col > 0, col, 1.0)
    coef = jnp.linalg.lstsq(B / col, jnp.stack([f.reshape(-1), g.reshape(-1)], -1) * sw[:, None])[0] / col[:, None]
    coef = jax.lax.stop_gradient(coef)
    correction = (x - mu) @ coef  # [p, 2]
    return fw - correction[:, 0], gw - correction[:, 1]


@jax.custom_jvp
def _no_gradient(value):
    return value


@_no_gradient.defjvp
def _no_gradient_jvp(primals, tangents):
    raise NotImplementedError(
        "gradients of the stochastic DSE estimate (method='slq') are not supported; "
        "differentiate method='auto' (exact) instead"
    )

"""Matrix-free DSE by stochastic Lanczos quadrature, with a standard error.

DSE needs two spectral sums of the diffusion operator, ``Z = sum_i |lambda_i|^t``
and ``H = sum_i |lambda_i|^t log|lambda_i|^t``; then ``DSE = (log Z - H / Z) / log b``
(the entropy of ``p_i = |lambda_i|^t / Z``, written with sums instead of the full spectrum).
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

The standard error combines, in quadrature, three parts: the probe-to-probe
spread of the per-probe DSE linearisation (delta method: ``dDSE = ((1/Z +
H/Z^2) dZ - dH/Z) / log b``, divided by ``sqrt(num_probes)``); half the gap
between the Gauss and Gauss-Radau estimates (the truth lies between them for a
positive semi-definite kernel, so the midpoint is off by at most that); and
what Ritz values below the rounding floor would add if they were real.
``value +- 2 * stderr`` is the error bar. Against a float64 reference on six
data families (``benchmarks/results_accuracy.md``) it covers the error in at
least 95% of cells. Kernels that are not positive semi-definite (the adaptive
``"knn"`` bandwidth, some precomputed affinities) have eigenvalues below 0,
where ``|x|^t`` has a kink and the two rules need not bracket the truth.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
from matfree import decomp

from jaxdse.kernels.points import HIGHEST
from jaxdse.solvers import _linalg
from jaxdse.solvers.objects import SLQ, Estimate
from jaxdse.solvers.operators import Operator


def _at_full_precision(fn, *args):
    """``(value, aux) = fn(*args)`` (arrays in and out), its value and the derivative of
    ``value`` traced at full float32 matmul precision; ``aux`` carries no derivative.

    matfree's Lanczos (its recurrence coefficients, full reorthogonalisation and
    adjoint) and the control-variate fit use plain matmuls, which an accelerator
    may run as TF32 or bfloat16 passes. ``jax.default_matmul_precision`` reaches
    what is traced inside it, but ``jax.grad`` traces the backward pass later,
    outside: so the pullback is built and run under the same setting, through a
    custom VJP. A custom VJP may not close over traced values, so ``fn`` is
    traced once and every value it closes over (arrays, masks, keys) becomes an
    explicit argument. ``aux`` (the standard error) is not differentiated: its
    derivative is NaN if asked for (and its zero sensitivity otherwise is not
    pushed through the square root of a zero variance).
    """
    with jax.default_matmul_precision("highest"):
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    jaxpr, num_args = closed.jaxpr, len(args)

    def explicit(*args_and_consts):
        run = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, args_and_consts[num_args:]))
        value, aux = run(*args_and_consts[:num_args])
        return value, aux

    return _highest(explicit, *args, *closed.consts)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _highest(fn, *args):
    with jax.default_matmul_precision("highest"):
        return fn(*args)


def _highest_fwd(fn, *args):
    with jax.default_matmul_precision("highest"):
        value, pullback, aux = jax.vjp(fn, *(a.value for a in args), has_aux=True)
    return (value, aux), pullback


def _highest_bwd(fn, pullback, cotangents):
    d_value, d_aux = cotangents
    if isinstance(d_value, jax.custom_derivatives.SymbolicZero):
        d_value = jnp.zeros(d_value.shape, d_value.dtype)
    with jax.default_matmul_precision("highest"):
        grads = pullback(d_value)
    if not isinstance(d_aux, jax.custom_derivatives.SymbolicZero):  # no derivative to give: NaN
        grads = tuple(g * jnp.nan if jnp.issubdtype(g.dtype, jnp.inexact) else g for g in grads)
    return grads


_highest.defvjp(_highest_fwd, _highest_bwd, symbolic_zeros=True)


def slq_entropy(op: Operator, key, t, base, solver: SLQ, num_rows: int) -> Estimate:
    """DSE of the operator ``op`` and its standard error, each of ``t``'s shape (units of ``base``).

    Random vectors are drawn for the first ``num_rows`` rows only, so padding rows
    (for blocks or devices) leave the draws unchanged.
    """
    dtype = op.v.dtype
    t = jnp.asarray(t, dtype)

    def estimate(t):
        rules, known = lanczos_nodes(
            op,
            key,
            num_probes=solver.num_probes,
            num_matvecs=solver.num_matvecs,
            deflation_rank=solver.deflation_for(op.v.shape[0]),
            probes=solver.probes,
            num_rows=num_rows,
        )
        return jax.vmap(lambda s: _entropy_and_error(rules, known, s))(t.reshape(-1))

    value, stderr = _at_full_precision(estimate, t)
    # An estimate outside the possible range [0, log m] (m kept rows; near the
    # ends, at large t or tiny sigma) is moved to the nearest possible value.
    # Within its error bar its gradient stays that of the estimate (a clipped
    # value's gradient would be 0 whatever the true one is); beyond it, the
    # estimate says nothing about the slope, and the gradient is NaN.
    top = jnp.log(jnp.maximum(jnp.sum(op.keep), 1).astype(dtype))
    slack = 2.0 * stderr + _rounding_floor(dtype) * jnp.maximum(top, 1.0)
    value = _clip_keeping_gradient(value, top, jax.lax.stop_gradient((value < -slack) | (value > top + slack)))
    log_base = jnp.log(jnp.asarray(base, dtype))
    return Estimate((value / log_base).reshape(t.shape), (stderr / log_base).reshape(t.shape))


@jax.custom_jvp
def _clip_keeping_gradient(value, top, untrusted):
    """``value`` clipped to ``[0, top]``; its derivatives pass through, NaN where ``untrusted``."""
    return jnp.clip(value, 0.0, top)


@_clip_keeping_gradient.defjvp
def _clip_keeping_gradient_jvp(primals, tangents):
    value, top, untrusted = primals
    # A product, so that it stays linear in the tangent (reverse mode transposes it).
    return jnp.clip(value, 0.0, top), tangents[0] * jnp.where(untrusted, jnp.nan, 1.0)


class Rules(NamedTuple):
    """Gauss and Gauss-Radau rules of each vector: axis 0 is the rule, then ``[vectors, m]``.

    ``nodes`` and ``first`` (the first components of the tridiagonal matrix's
    eigenvectors) carry no derivatives; ``weights = |u|^2 first^2`` carry those
    of ``|u|^2``, and ``change = Y^T (J - stop_gradient(J)) Y`` ``[2, vectors, m, m]``
    is zero in value and carries the derivatives of the tridiagonal matrix ``J``
    in its eigenbasis (see :func:`_rule_sum`).
    """

    nodes: jax.Array
    weights: jax.Array
    first: jax.Array
    change: jax.Array


class _Known(NamedTuple):
    """Exact traces of ``P A^j P`` (j = 0, 1, 2) for the control variates."""

    moments: jax.Array  # [3]
    num_deflated: int


def lanczos_nodes(
    op, key, *, num_probes: int, num_matvecs: int, deflation_rank: int, probes: str, num_rows: int | None = None
):
    """Gauss-quadrature rules of ``A``'s spectral measure per vector.

    Returns ``(rules, known)``: :class:`Rules` with arrays ``[2, k + p, m]``
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
        # tr(Q^T h(A) Q) + tr(P h(A) P) is tr h(A) for every fixed orthonormal Q,
        # so the gradient need not flow through the power step and QR (cheaper,
        # and in float32 slightly closer to the exact gradient).
        Q = jax.lax.stop_gradient(_linalg.qr_q(op.matmat(_linalg.qr_q(Y))))
        AQ = op.matmat(Q)
        # The probes' space has dimension m - 1 - k, and none when the m kept
        # rows leave fewer than k directions (a small class in DSMI, a mask):
        # Q's columns past m - 1 then lie where A is 0 and add nothing.
        dim = jnp.maximum(moments[0] - deflation_rank, 0.0)
        moments = jnp.stack([dim, moments[1] - jnp.sum(Q * AQ), moments[2] - jnp.sum(AQ * AQ)])

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
    # The root-mean-square eigenvalue of P A P (from tr P A^2 P over its rank),
    # where the breakdown guard's values go (see _quadrature); a constant, as
    # the guard is. Floored, so that the guard's values stay distinct.
    floor = _rounding_floor(dtype)
    spread = jnp.sqrt(jnp.maximum(moments[2], 0.0) / jnp.maximum(moments[0], 1.0))
    spread = jax.lax.stop_gradient(jnp.maximum(spread, floor))
    return _quadrature(op.matmat, U, num_matvecs, spread), _Known(moments, deflation_rank)


def _quadrature(matmat, U, num_matvecs: int, spread):
    """Lanczos Gauss quadrature for each column of ``U`` ``[n, c]``.

    Returns :class:`Rules`, each ``[2, c, m]`` for ``m = num_matvecs``: the
    ``(m-1)``-point Gauss rule (padded with a zero-weight node) and the ``m``-point
    Gauss-Radau rule with a node fixed at 0, both from one ``m``-step Lanczos run.
    Reverse-mode derivatives use matfree's adjoint of the Lanczos recurrence
    (Kraemer et al. 2024, arXiv 2405.17277), exact and without storing the
    iterations; from the tridiagonal matrix on, see :func:`_rule_sum`.

    Each vector is extended by ``m`` extra coordinates on which the operator is a
    fixed diagonal of ``m`` distinct values in ``(0, spread)``, with a total
    weight of ``eps^2 |u|^2``. The Krylov space then never runs out before ``m``
    steps, so Lanczos cannot break down (0 / 0) on operators with few distinct
    eigenvalues (a kernel that is exactly the identity or exactly constant,
    duplicated points), while the estimate moves by a relative ``eps^2``.
    ``spread`` is the operator's root-mean-square eigenvalue on the probes'
    space, so the extra values lie inside its spectrum. Lanczos grows whatever
    lies outside the spectrum it has seen, by about ``|extra| / |A|`` per step:
    with values in (-1, 1) and a residual spectrum near 0.03 (a smooth kernel
    on 100 points), the eps^2 weight took over after five steps; the value
    barely moved, but its gradient did (cosine 0.06 to 0.98 against the exact
    one, where it is 0.995 with values inside). The weight is below the
    operator's own rounding (``eps``) for the same reason: with ``eps``, DSE
    near 1 moved by 0.2 bits in float32.
    """
    tridiag = decomp.tridiag_sym(num_matvecs, materialize=True, reortho="full", custom_vjp=True)
    n, dtype = U.shape[0], U.dtype
    # matfree's adjoint builds some constants in the default float type; with
    # x64 enabled that is float64, so the recurrence runs in float64 too.
    work = jnp.float64 if jax.config.jax_enable_x64 else dtype
    eps = jnp.finfo(dtype).eps
    extra = (spread * 0.5 * (1.0 + jnp.cos(jnp.pi * (jnp.arange(num_matvecs, dtype=work) + 0.5) / num_matvecs))).astype(
        work
    )
    fill = (eps / math.sqrt(num_matvecs)).astype(work)

    def matvec(w):
        head = matmat(w[:n, None].astype(dtype))[:, 0].astype(work)
        return jnp.concatenate([head, extra * w[n:]])

    def one(u):
        norm = jnp.linalg.norm(u)
        safe = jnp.where(norm > 0, norm, 1.0)
        u = jnp.concatenate([(u / safe).astype(work), jnp.full(num_matvecs, fill, work)])
        norm = norm * jnp.linalg.norm(u)
        result = tridiag(matvec, u / jnp.linalg.norm(u))
        # Gauss on the leading (m-1) x (m-1) block; Gauss-Radau adds one node
        # fixed at 0 (Golub & Meurant) using the last Lanczos coefficient. For
        # g(x) = x log x, whose even derivatives are > 0 and odd ones < 0 on
        # (0, 1], Gauss underestimates and Gauss-Radau overestimates u^T g(A) u.
        J_full = result.J_small
        fixed = jax.lax.stop_gradient(J_full)
        m = J_full.shape[0] - 1
        J, beta = fixed[:m, :m], fixed[m, m - 1]
        theta, Y = _linalg.eigh(J)
        # (J^-1)_mm from J's eigenpairs; guard near-zero Ritz values.
        floor = jnp.finfo(J.dtype).eps * jnp.max(jnp.abs(theta))
        theta_safe = jnp.where(jnp.abs(theta) > floor, theta, jnp.where(theta < 0, -floor, floor))
        delta_m = beta**2 * jnp.sum(Y[-1, :] ** 2 / theta_safe)
        theta_r, Y_r = _linalg.eigh(fixed.at[m, m].set(delta_m))
        nodes = jnp.stack([jnp.pad(theta, (0, 1)), theta_r])
        first = jnp.stack([jnp.pad(Y[0, :], (0, 1)), Y_r[0, :]])
        # J's change in each rule's eigenbasis; the Radau rule's last entry
        # delta_m = beta^2 (J^-1)_mm changes by 2 beta dbeta (J^-1)_mm - beta^2 (J^-1 dJ J^-1)_mm.
        dJ = J_full - fixed
        change_gauss = Y.T @ dJ[:m, :m] @ Y
        q = Y[-1, :] / theta_safe
        d_delta = 2.0 * beta * dJ[m, m - 1] * jnp.sum(Y[-1, :] * q) - beta**2 * (q @ change_gauss @ q)
        change = jnp.stack(
            [
                jnp.pad(change_gauss, ((0, 1), (0, 1))),
                Y_r.T @ dJ.at[m, m].set(d_delta) @ Y_r,
            ]
        )
        rules = Rules(nodes, first**2 * norm**2, first, change)
        return jax.tree.map(lambda a: a.astype(dtype), rules)

    # vmap turns the matvecs of all columns into one product with [n, c].
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), jax.vmap(one, in_axes=1)(U))


# Ritz values below ROUNDING_FLOOR * eps are taken as 0: the products with A
# (|A| <= 1) are rounded at about eps, so smaller ones cannot be told from 0.
# The floor is no higher: a smooth kernel's spectrum (DSE below about 2 bits)
# holds most of its eigenvalues between 1e-7 and 1e-5, and at 16 eps dropping
# them biased DSE by -0.04 bits at n = 2000 (-0.05 at n = 8000). What the
# dropped values could add is part of the standard error.
ROUNDING_FLOOR = 1
GRADIENT_FLOOR = 16


def _rounding_floor(dtype):
    return ROUNDING_FLOOR * jnp.finfo(dtype).eps


def _powers(theta, t, floor=0.0):
    """``f = |theta|^t``, ``g = f log f`` and their slopes ``f'``, ``g'``; all 0 where ``|theta| <= floor``.

    ``|theta|`` is capped at 1, the end of the operator's spectrum: a Gauss-Radau
    node can lie far outside it (with a weight near 0) when the Gauss block has a
    Ritz value near 0, and ``|theta|^t`` of it overflowed to NaN at t = 100.
    """
    a = jnp.minimum(jnp.abs(theta), 1.0)
    nonzero = a > floor
    safe = jnp.where(nonzero, a, 1.0)
    log_f = t * jnp.log(safe)
    f = jnp.where(nonzero, jnp.exp(log_f), 0.0)
    g = jnp.where(nonzero, f * log_f, 0.0)
    df = jnp.where(nonzero, t * f / safe * jnp.sign(theta), 0.0)
    return f, g, df, df * (log_f + 1.0)


def _rule_sum(phi, slope, rules, rule: int):
    """``sum_j w_j phi(theta_j)`` per vector ``[vectors]``, given ``phi`` and ``phi'`` at the nodes ``[vectors, m]``.

    In value a plain quadrature sum. Its derivatives are those of
    ``|u|^2 e_1^T phi(J) e_1`` through the Lanczos matrix ``J`` by the
    Daleckii-Krein formula: ``|u|^2 sum_ij y_i y_j phi[theta_i, theta_j] dJ_ij``
    (``y`` the first components of ``J``'s eigenvectors, ``dJ`` in their basis,
    ``phi[a, b]`` the divided difference, ``phi'`` where ``a`` and ``b`` are
    within rounding). Differentiating the nodes and weights one by one instead
    (through ``eigh``) divides by the gaps between Ritz values, and in float32
    close Ritz values made that gradient noise; this form has no such division.
    """
    weights = rules.weights[rule]
    if rules.change is None:  # no derivatives wanted
        return jnp.sum(weights * phi, axis=-1)
    nodes, first, change = rules.nodes[rule], rules.first[rule], rules.change[rule]
    a, b = nodes[..., :, None], nodes[..., None, :]
    gap = a - b
    close = jnp.abs(gap) <= jnp.sqrt(jnp.finfo(nodes.dtype).eps) * jnp.maximum(jnp.abs(a), jnp.abs(b))
    divided = jnp.where(
        close,
        0.5 * (slope[..., :, None] + slope[..., None, :]),
        (phi[..., :, None] - phi[..., None, :]) / jnp.where(close, 1.0, gap),
    )
    norm2 = jax.lax.stop_gradient(jnp.sum(weights, axis=-1))
    change_term = jnp.einsum("...i,...ij,...j->...", first, divided * change, first, precision=HIGHEST)
    return jnp.sum(weights * phi, axis=-1) + norm2 * change_term


def _entropy_and_error(rules: Rules, known: _Known, t):
    """DSE (nats) midway between the Gauss and Gauss-Radau rules, and its standard error.

    The error combines, in quadrature, the probe spread, half the two rules' gap
    (the largest error of the midpoint when the rules bracket the truth) and
    what the Ritz values at rounding level would add if they were real (the
    value with them minus the value without).
    """
    floor = _rounding_floor(rules.nodes.dtype)
    gauss, sampling = _entropy_from_rule(rules, 0, known, t, floor)
    radau, _ = _entropy_from_rule(rules, 1, known, t, floor)
    # The derivative leaves out Ritz values below GRADIENT_FLOOR eps: g'(x) = log x + 1
    # is large there and rounding-level nodes made it noise (cosine 0.61 against the
    # exact gradient at n = 800, DSE near 0.8, with the value's floor).
    coarse = GRADIENT_FLOOR * jnp.finfo(rules.nodes.dtype).eps
    gauss_d, _ = _entropy_from_rule(rules, 0, known, t, coarse)
    radau_d, _ = _entropy_from_rule(rules, 1, known, t, coarse)
    mid_d = 0.5 * (gauss_d + radau_d)
    # Without derivatives (change=None: plain quadrature sums).
    unfloored, _ = _entropy_from_rule(jax.lax.stop_gradient(rules._replace(change=None)), 0, known, t, 0.0)
    rounding = jax.lax.stop_gradient(unfloored - gauss)
    value = mid_d + jax.lax.stop_gradient(0.5 * (gauss + radau) - mid_d)
    return value, jnp.sqrt(sampling**2 + (gauss - radau) ** 2 / 4.0 + rounding**2)


def _entropy_from_rule(rules: Rules, rule: int, known: _Known, t, floor):
    """DSE in nats and its standard error from one of the two rules, for one scalar ``t``."""
    k = known.num_deflated
    nodes = rules.nodes[rule]
    f, g, df, dg = _powers(nodes, t, floor)
    fw, gw = _rule_sum(f, df, rules, rule), _rule_sum(g, dg, rules, rule)
    z_top, h_top = jnp.sum(fw[:k]), jnp.sum(gw[:k])
    probes = jax.tree.map(lambda a: a[:, k:], rules)
    f_p, g_p = _control_variates(probes, rule, f[k:], g[k:], fw[k:], gw[k:], known.moments)
    z = 1.0 + z_top + jnp.mean(f_p)
    h = h_top + jnp.mean(g_p)
    value = jnp.log(z) - h / z
    per_probe = (1.0 / z + h / (z * z)) * f_p - g_p / z
    p = per_probe.shape[0]
    stderr = jnp.std(per_probe, ddof=1) / math.sqrt(p)
    return value, stderr


def _control_variates(rules: Rules, rule: int, f, g, fw, gw, moments):
    """Per-probe ``h`` minus its fitted quadratic in ``theta``, plus that quadratic's exact trace."""
    theta, w = rules.nodes[rule], rules.weights[rule]
    scale = jnp.max(jnp.abs(theta))
    scale = jnp.where(scale > 0, scale, 1.0)
    s = theta / scale
    basis = jnp.stack([jnp.ones_like(s), s, s * s], axis=-1)  # [p, m, 3]
    slopes = jnp.stack([jnp.zeros_like(s), jnp.full_like(s, 1.0 / scale), 2.0 * s / scale], axis=-1)
    x = jnp.stack(
        [_rule_sum(basis[..., j], slopes[..., j], rules, rule) for j in range(3)], axis=-1
    )  # per-probe moments
    mu = moments * jnp.stack([1.0, 1.0 / scale, 1.0 / (scale * scale)])
    sw = jnp.sqrt(w).reshape(-1)
    B = basis.reshape(-1, 3) * sw[:, None]
    col = jnp.sqrt(jnp.sum(B * B, axis=0))
    col = jnp.where(col > 0, col, 1.0)
    coef = _linalg.lstsq(B / col, jnp.stack([f.reshape(-1), g.reshape(-1)], -1) * sw[:, None]) / col[:, None]
    coef = jax.lax.stop_gradient(coef)
    correction = (x - mu) @ coef  # [p, 2]
    return fw - correction[:, 0], gw - correction[:, 1]

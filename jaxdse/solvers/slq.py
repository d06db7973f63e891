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

from jaxdse.kernels.points import HIGHEST
from jaxdse.solvers import _linalg
from jaxdse.solvers.lanczos import Rules, quadrature, rule_sum
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


class _Known(NamedTuple):
    """Exact traces of ``P A^j P`` (j = 0, 1, 2) for the control variates."""

    moments: jax.Array  # [3]
    num_deflated: int
    share: float = 0.0  # the probes' share of the deflated trace: TOP_SHARE^2 with deflation
    excess: jax.Array | None = None  # [p, k]: (q_i^T omega)^2 - 1 per probe and column of Q


def lanczos_nodes(
    op, key, *, num_probes: int, num_matvecs: int, deflation_rank: int, probes: str, num_rows: int | None = None
):
    """Gauss-quadrature rules of ``A``'s spectral measure per vector.

    Returns ``(rules, known)``: :class:`Rules` with arrays ``[2, k + p, m]``
    (Gauss and Gauss-Radau rules, see :func:`jaxdse.solvers.lanczos.quadrature`; the first
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
        # In A's Ritz basis on Q (Q^T A Q diagonal), so that Q^T h(A) Q is nearly
        # diagonal too (the probes' control variate on their share of Q).
        T = jax.lax.stop_gradient(jnp.matmul(Q.T, op.matmat(Q), precision=HIGHEST))
        Q = jnp.matmul(Q, _linalg.eigh(0.5 * (T + T.T))[1], precision=HIGHEST)
        AQ = op.matmat(Q)
        # The probes' space has dimension m - 1 - k, and none when the m kept
        # rows leave fewer than k directions (a small class in DSMI, a mask):
        # Q's columns past m - 1 then lie where A is 0 and add nothing.
        dim = jnp.maximum(moments[0] - deflation_rank, 0.0)
        # The probes are M omega with M = P + TOP_SHARE Q Q^T (see TOP_SHARE), so
        # they estimate tr(P h(A) P) + TOP_SHARE^2 tr(Q^T h(A) Q), and their exact
        # moments are tr(M A^j M).
        top = jnp.stack([float(deflation_rank), jnp.sum(Q * AQ), jnp.sum(AQ * AQ)])
        moments = jnp.stack([dim, moments[1] - top[1], moments[2] - top[2]]) + TOP_SHARE**2 * top

        def project(U):
            QtU = jnp.matmul(Q.T, U, precision=HIGHEST)
            return project_v(U - jnp.matmul(Q, QtU, precision=HIGHEST)) + TOP_SHARE * jnp.matmul(
                Q, QtU, precision=HIGHEST
            )

    else:
        Q = jnp.zeros((n, 0), dtype)
        project = project_v
    if probes == "rademacher":
        omega = draw(jax.random.rademacher, key_p, num_probes)
    else:
        omega = draw(jax.random.normal, key_p, num_probes)
    omega = omega * keep[:, None]
    G = project(omega)
    # Each probe's squared components on Q less their mean 1, [p, k].
    excess = jnp.square(jnp.matmul(Q.T, omega, precision=HIGHEST)).T - 1.0
    U = jnp.concatenate([Q, G], axis=1)
    # The root-mean-square eigenvalue of P A P (from tr P A^2 P over its rank),
    # where the breakdown guard's values go (see lanczos.quadrature); a constant, as
    # the guard is. Floored, so that the guard's values stay distinct.
    floor = _rounding_floor(dtype)
    spread = jnp.sqrt(jnp.maximum(moments[2], 0.0) / jnp.maximum(moments[0], 1.0))
    spread = jax.lax.stop_gradient(jnp.maximum(spread, floor))
    share = TOP_SHARE**2 if deflation_rank else 0.0
    return quadrature(op.matmat, U, num_matvecs, spread), _Known(moments, deflation_rank, share, excess)


# Ritz values below ROUNDING_FLOOR * eps are taken as 0: the products with A
# (|A| <= 1) are rounded at about eps, so smaller ones cannot be told from 0.
# The floor is no higher: a smooth kernel's spectrum (DSE below about 2 bits)
# holds most of its eigenvalues between 1e-7 and 1e-5, and at 16 eps dropping
# them biased DSE by -0.04 bits at n = 2000 (-0.05 at n = 8000). What the
# dropped values could add is part of the standard error.
ROUNDING_FLOOR = 1
GRADIENT_FLOOR = 16

# The probes keep a share TOP_SHARE (in amplitude) of the deflated directions Q.
# A probe with exactly none of them (P omega) has no weight on the top
# eigenvalues, which lie far above the rest when the spectrum has a gap; the
# m-point Gauss rule is then unstable in A: any first-order change of A that
# couples Q to the rest adds such weight, which Lanczos amplifies by
# (lambda_top / lambda_rest) per step. The value is unaffected, its derivative
# was not (cosine 0.01 against the exact gradient, norm 80 times too large, with
# 64 deflation columns at n = 800, DSE 0.8; worse the more exactly Q is
# invariant). With a small share of Q in every probe the rule already has nodes
# there and is stable (cosine 0.999 there; with the default 16 columns at
# n = 2000, DSE 1, the lowest of 4 keys rose from 0.962 to 0.990); the probes'
# expectation gains TOP_SHARE^2 tr(Q^T h(A) Q), which is known (the deflated
# part) and subtracted, so the estimate stays unbiased. Not enough with 64
# columns on n = 2000 Gaussian points in 64 dimensions at DSE 1 (64 eigenvalues
# near 1e-3, the rest below 1e-5, much of it at float32's rounding level):
# cosines 0.06 to 0.88 over keys, hence the default of 16.
TOP_SHARE = 0.1


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
    fw, gw = rule_sum(f, df, rules, rule), rule_sum(g, dg, rules, rule)
    z_top, h_top = jnp.sum(fw[:k]), jnp.sum(gw[:k])
    f_p, g_p = _control_variates(rules, rule, f, g, fw, gw, known)
    z = 1.0 + (1.0 - known.share) * z_top + jnp.mean(f_p)
    h = (1.0 - known.share) * h_top + jnp.mean(g_p)
    value = jnp.log(z) - h / z
    per_probe = (1.0 / z + h / (z * z)) * f_p - g_p / z
    p = per_probe.shape[0]
    stderr = jnp.std(per_probe, ddof=1) / math.sqrt(p)
    return value, stderr


def _control_variates(rules: Rules, rule: int, f, g, fw, gw, known: _Known):
    """Per-probe ``h`` minus its fitted quadratic in ``theta``, plus that quadratic's exact trace.

    The quadratic is fitted on the probes' nodes; with deflation, the probes'
    share of each column ``q_i`` of ``Q`` (``share (q_i^T omega)^2`` times the
    residual ``q_i^T (h - quadratic)(A) q_i``, known from ``q_i``'s own rule)
    is replaced by its mean as well.
    """
    k = known.num_deflated
    theta, w = rules.nodes[rule], rules.weights[rule]
    scale = jnp.max(jnp.abs(theta[k:]))
    scale = jnp.where(scale > 0, scale, 1.0)
    s = theta / scale
    basis = jnp.stack([jnp.ones_like(s), s, s * s], axis=-1)  # [vectors, m, 3]
    slopes = jnp.stack([jnp.zeros_like(s), jnp.full_like(s, 1.0 / scale), 2.0 * s / scale], axis=-1)
    x = jnp.stack(
        [rule_sum(basis[..., j], slopes[..., j], rules, rule) for j in range(3)], axis=-1
    )  # per-vector moments
    mu = known.moments * jnp.stack([1.0, 1.0 / scale, 1.0 / (scale * scale)])
    sw = jnp.sqrt(w[k:]).reshape(-1)
    B = basis[k:].reshape(-1, 3) * sw[:, None]
    col = jnp.sqrt(jnp.sum(B * B, axis=0))
    col = jnp.where(col > 0, col, 1.0)
    coef = _linalg.lstsq(B / col, jnp.stack([f[k:].reshape(-1), g[k:].reshape(-1)], -1) * sw[:, None]) / col[:, None]
    coef = jax.lax.stop_gradient(coef)
    correction = (x[k:] - mu) @ coef  # [p, 2]
    if k:
        residual = jnp.stack([fw[:k], gw[:k]], -1) - x[:k] @ coef  # [k, 2]
        correction = correction + known.share * (known.excess @ residual)
    fw, gw = fw[k:], gw[k:]
    return fw - correction[:, 0], gw - correction[:, 1]

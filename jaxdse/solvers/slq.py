"""Matrix-free DSE by stochastic Lanczos quadrature, with a standard error.

DSE needs two spectral sums of the diffusion operator, ``Z = sum_i |lambda_i|^t``
and ``H = sum_i |lambda_i|^t log|lambda_i|^t``; then ``DSE = (log Z - H / Z) / log b``
(the entropy of ``p_i = |lambda_i|^t / Z``, written with sums instead of the full spectrum).
Both are traces of matrix functions of the symmetric ``S = D^-1/2 K D^-1/2``,
estimated here from one set of Lanczos runs (:func:`matfree.decomp.tridiag_sym`):

1. The known eigenpair ``(1, v)`` is removed exactly: ``A = S - v v^T``,
   ``Z = 1 + tr f(A)``, ``H = tr g(A)`` (``f(0) = g(0) = g(1) = 0``).
2. Low-rank deflation (Hutch++): an orthonormal ``Q`` ``[n, k]`` for the top
   of ``A``'s spectrum: the top ``k`` Ritz vectors of the block Krylov space
   ``[A W, A^2 W, ..., A^b W]`` of ``k`` random columns ``W`` (``b = KRYLOV_BLOCKS``);
   ``tr h(A) = tr(Q^T h(A) Q) + tr(P h(A) P)`` with ``P = I - Q Q^T - v v^T``.
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
5. Derivatives: the Lanczos runs carry none. Each ``u^T h(A) u`` is differentiated
   with its Lanczos basis ``V`` held fixed, as ``|u|^2 e_1^T h(V A V^T) e_1``
   (one product of ``A`` with every basis, :func:`_live`, only under
   differentiation); the control variates' moments and exact traces carry
   their exact derivatives. Differentiating the recurrence itself (an exact
   adjoint) amplified rounding: where the probes' spectrum lies at float32's
   rounding level the gradient was noise.

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
where ``|x|^t`` has a kink: the Gauss-Radau node then sits at the lowest Ritz
value (:func:`jaxdse.solvers.lanczos.quadrature`) and the default runs twice
as many Lanczos steps (:meth:`SLQ.matvecs_for`).
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
from jaxdse.solvers.lanczos import Krylov, Rules, krylov_derivative, quadrature, rule_sum
from jaxdse.solvers.objects import SLQ, Estimate
from jaxdse.solvers.operators import Operator


def _at_full_precision(fn, *args):
    """``(value, aux) = fn(differentiable, *args)`` (arrays in and out), its value and the derivative of
    ``value`` traced at full float32 matmul precision; ``aux`` carries no derivative.

    ``fn(False, ...)`` computes the value alone and runs when no derivative is
    asked for; ``fn(True, ...)`` also builds the terms that carry derivatives,
    and runs under differentiation. Products may run as TF32 or bfloat16
    passes on an accelerator; ``jax.default_matmul_precision`` reaches what is
    traced inside it, but ``jax.grad`` traces the backward pass later,
    outside: so the pullback is built and run under the same setting, through a
    custom VJP. A custom VJP may not close over traced values, so ``fn`` is
    traced and every value it closes over (arrays, masks, keys) becomes an
    explicit argument. ``aux`` (the standard error) is not differentiated: its
    derivative is NaN if asked for (and its zero sensitivity otherwise is not
    pushed through the square root of a zero variance).
    """
    with jax.default_matmul_precision("highest"):
        traced = [jax.make_jaxpr(partial(fn, flag))(*args) for flag in (False, True)]
    num_args, num_plain = len(args), len(traced[0].consts)

    def explicit(differentiable, *args_and_consts):
        values, consts = args_and_consts[:num_args], args_and_consts[num_args:]
        consts = consts[num_plain:] if differentiable else consts[:num_plain]
        closed = traced[differentiable]
        value, aux = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(closed.jaxpr, consts))(*values)
        return value, aux

    return _highest(explicit, *args, *traced[0].consts, *traced[1].consts)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _highest(fn, *args):
    with jax.default_matmul_precision("highest"):
        return fn(False, *args)


def _highest_fwd(fn, *args):
    with jax.default_matmul_precision("highest"):
        value, pullback, aux = jax.vjp(partial(fn, True), *(a.value for a in args), has_aux=True)
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


def _without_derivatives(fn):
    """``fn()`` with every value it closes over held constant: no derivative reaches or leaves it."""
    closed, shape = jax.make_jaxpr(fn, return_shape=True)()
    consts = [jax.lax.stop_gradient(c) if jnp.issubdtype(c.dtype, jnp.inexact) else c for c in closed.consts]
    out = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(closed.jaxpr, consts))()
    return jax.tree.unflatten(jax.tree.structure(shape), out)


def slq_entropy(op: Operator, key, t, base, solver: SLQ, num_rows: int, *, indefinite: bool = False) -> Estimate:
    """DSE of the operator ``op`` and its standard error, each of ``t``'s shape (units of ``base``).

    Random vectors are drawn for the first ``num_rows`` rows only, so padding rows
    (for blocks or devices) leave the draws unchanged. ``indefinite``: the
    kernel need not be positive semi-definite (see :meth:`SLQ.matvecs_for`).
    """
    dtype = op.v.dtype
    t = jnp.asarray(t, dtype)

    def estimate(differentiable, t):
        # The value and its error bar come from Lanczos runs that carry no
        # derivatives; those come from one more product with the operator
        # (:func:`_live`), built only when a derivative is asked for.
        rules, known, U, krylov = _without_derivatives(
            lambda: lanczos_nodes(
                op,
                key,
                num_probes=solver.num_probes,
                num_matvecs=solver.matvecs_for(indefinite, num_rows),
                deflation_rank=solver.deflation_for(op.v.shape[0]),
                probes=solver.probes,
                num_rows=num_rows,
            )
        )
        live = _live(op, U, krylov, known.num_deflated) if differentiable else None
        return jax.vmap(lambda s: _entropy_and_error(rules, known, krylov, live, s))(t.reshape(-1))

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


def exact_moments(op: Operator, Q, AQ):
    """``tr(P A^j P)`` for j = 0, 1, 2 ``[3]``, ``P = I - Q Q^T - v v^T`` (on the kept rows) the probes' projection.

    ``tr A`` and ``|A|_F^2`` are known exactly, so these are exact; differentiable
    in ``op`` and ``AQ``.
    """
    k = Q.shape[1]
    kept = jnp.sum(op.keep.astype(op.v.dtype))
    if not k:
        return jnp.stack([kept - 1.0, op.trace, op.frobenius_sq])
    # The probes' space has dimension m - 1 - k, and none when the m kept rows
    # leave fewer than k directions (a small class in DSMI, a mask): Q's
    # columns past m - 1 then lie where A is 0 and add nothing.
    top = jnp.stack([jnp.asarray(float(k), kept.dtype), jnp.sum(Q * AQ), jnp.sum(AQ * AQ)])
    return jnp.stack([jnp.maximum(kept - 1.0 - k, 0.0), op.trace - top[1], op.frobenius_sq - top[2]])


class _Live(NamedTuple):
    """Terms that are 0 in value and carry the estimate's derivatives in the operator.

    ``change`` ``[vectors, m, m]``: ``Y^T dJ Y`` for each vector's Krylov matrix
    ``J = V A V^T`` (basis ``V`` held fixed, see
    :func:`jaxdse.solvers.lanczos.krylov_derivative`); ``moments`` ``[vectors, 3]``:
    the changes of ``|u|^2``, ``u^T A u`` and ``|A u|^2``; ``exact`` ``[3]``: those of
    :func:`exact_moments`.
    """

    change: jax.Array
    moments: jax.Array
    exact: jax.Array


def _live(op: Operator, U, krylov: Krylov, k: int) -> _Live:
    """:class:`_Live` from one product of the operator with ``U`` and every Krylov basis.

    The derivative of ``u^T h(A) u`` with ``u``'s Lanczos basis held fixed is
    that of ``|u|^2 e_1^T h(V A V^T) e_1``: it needs ``A V^T`` (as many columns
    as Lanczos' own products, in one product) and no pass back through the
    recurrence. Through the recurrence (an exact adjoint), the gradient became
    noise where the probes' spectrum lies at float32's rounding level (cosine
    0.06 against the exact gradient with 64 deflation columns at n = 2000,
    DSE 1, where float64 gave 0.9994; 0.997 this way).
    """
    c, m, n = krylov.basis.shape
    AW = op.matmat(jnp.concatenate([U, krylov.basis.reshape(c * m, n).T], axis=1))
    AU, AV = AW[:, :c], AW[:, c:].T.reshape(c, m, n)
    J = jnp.einsum("can,cbn->cab", krylov.basis, AV, precision=HIGHEST)
    Y = krylov.vectors
    change = jnp.einsum("cai,cab,cbj->cij", Y, _zero_valued(J), Y, precision=HIGHEST)
    moments = jnp.stack([jnp.zeros(c, U.dtype), jnp.sum(U * AU, axis=0), jnp.sum(AU * AU, axis=0)], -1)
    return _Live(change, _zero_valued(moments), _zero_valued(exact_moments(op, U[:, :k], AU[:, :k])))


def _zero_valued(x):
    """0 in value, with ``x``'s derivatives."""
    return x - jax.lax.stop_gradient(x)


def lanczos_nodes(
    op, key, *, num_probes: int, num_matvecs: int, deflation_rank: int, probes: str, num_rows: int | None = None
):
    """Gauss-quadrature rules of ``A``'s spectral measure per vector.

    Returns ``(rules, known, U, krylov)``: :class:`Rules` with arrays ``[2, k + p, m]``
    (Gauss and Gauss-Radau rules, see :func:`jaxdse.solvers.lanczos.quadrature`; the first
    ``k = deflation_rank`` rows for the deflation columns ``Q``, then the
    ``p = num_probes`` projected probes; weights sum to each vector's squared
    norm), the exact moments of the projected operator, the vectors ``U``
    ``[n, k + p]`` and their Lanczos runs (:class:`Krylov`). Random vectors are
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

    if deflation_rank:
        omega = draw(jax.random.normal, key_q, deflation_rank) * keep[:, None]
        # The top k Ritz vectors of a block Krylov space, not one power step:
        # at t = 100 the value rests on the few largest of many eigenvalues
        # near 1 (duplicated points, isolated outliers), which one power step
        # cannot tell apart (0.066 bits of error on duplicates at n = 1000, 0.011
        # with 3 blocks, within 0.01 with 4; the products cost about 20% of
        # the Lanczos runs').
        blocks = [_linalg.qr_q(op.matmat(project_v(omega)))]
        for _ in range(KRYLOV_BLOCKS - 1):
            blocks.append(_linalg.qr_q(op.matmat(blocks[-1])))
        K = _linalg.qr_q(jnp.concatenate(blocks, axis=1))
        T = jnp.matmul(K.T, op.matmat(K), precision=HIGHEST)
        w, W = _linalg.eigh(0.5 * (T + T.T))
        Q = jnp.matmul(K, W[:, -deflation_rank:], precision=HIGHEST)

        def project(U):
            return project_v(U - jnp.matmul(Q, jnp.matmul(Q.T, U, precision=HIGHEST), precision=HIGHEST))

    else:
        Q = jnp.zeros((n, 0), dtype)
        project = project_v
    moments = exact_moments(op, Q, op.matmat(Q))
    if probes == "rademacher":
        omega = draw(jax.random.rademacher, key_p, num_probes)
    else:
        omega = draw(jax.random.normal, key_p, num_probes)
    omega = omega * keep[:, None]
    G = project(omega)
    U = jnp.concatenate([Q, G], axis=1)
    # The root-mean-square eigenvalue of P A P (from tr P A^2 P over its rank),
    # where the breakdown guard's values go (see lanczos.quadrature); a constant, as
    # the guard is. Floored, so that the guard's values stay distinct.
    floor = _rounding_floor(dtype)
    spread = jnp.sqrt(jnp.maximum(moments[2], 0.0) / jnp.maximum(moments[0], 1.0))
    spread = jax.lax.stop_gradient(jnp.maximum(spread, floor))
    rules, krylov = quadrature(op.matmat, U, num_matvecs, spread)
    return rules, _Known(moments, deflation_rank), U, krylov


# Ritz values below ROUNDING_FLOOR * eps times the largest Gauss node (the
# operator's norm on the vectors, A without its eigenvalue 1) are taken as 0:
# products with A are rounded relative to that norm, so smaller ones cannot be
# told from 0. Relative, not absolute: a smooth kernel's spectrum (DSE below
# about 2 bits) holds most of its eigenvalues far below its largest, and
# dropping those under 16 eps biased DSE by -0.04 bits at n = 2000 (-0.05 at
# n = 8000); under 1 eps still by -0.009 at n = 8000, DSE 0.56 (7700
# eigenvalues near 1e-7 hold 2.5% of the mass). What the dropped values could
# add is part of the standard error.
ROUNDING_FLOOR = 1

# Blocks of the Krylov space the deflation columns are taken from.
KRYLOV_BLOCKS = 4


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


def _entropy_and_error(rules: Rules, known: _Known, krylov: Krylov, live: _Live | None, t):
    """DSE (nats) midway between the Gauss and Gauss-Radau rules, and its standard error.

    The error combines, in quadrature, the probe spread, half the two rules' gap
    (the largest error of the midpoint when the rules bracket the truth) and
    what the Ritz values at rounding level would add if they were real (the
    value with them minus the value without).
    """
    floor = _rounding_floor(rules.nodes.dtype) * jnp.max(jnp.abs(rules.nodes[0]))
    change = None if live is None else _sums_change(krylov, live, t, floor)
    gauss, sampling = _entropy_from_rule(rules, 0, known, live, change, t, floor)
    radau, _ = _entropy_from_rule(rules, 1, known, live, change, t, floor)
    unfloored, _ = _entropy_from_rule(rules, 0, known, None, None, t, 0.0)
    rounding = jax.lax.stop_gradient(unfloored - gauss)
    return 0.5 * (gauss + radau), jnp.sqrt(sampling**2 + (gauss - radau) ** 2 / 4.0 + rounding**2)


def _sums_change(krylov: Krylov, live: _Live, t, floor):
    """``[vectors, 2]``: 0 in value, with the derivatives in the operator of ``u^T f(A) u`` and ``u^T g(A) u``.

    Ritz values below the rounding floor count as 0, as in the value. ``t`` is
    held constant: the derivative in ``t`` is the quadrature's own.
    """
    f, g, df, dg = _powers(krylov.nodes, jax.lax.stop_gradient(t), floor)
    return jnp.stack([krylov_derivative(f, df, krylov, live.change), krylov_derivative(g, dg, krylov, live.change)], -1)


def _entropy_from_rule(rules: Rules, rule: int, known: _Known, live: _Live | None, change, t, floor):
    """DSE in nats and its standard error from one of the two rules, for one scalar ``t``."""
    k = known.num_deflated
    nodes = rules.nodes[rule]
    f, g, _, _ = _powers(nodes, t, floor)
    sums = jnp.stack([rule_sum(f, rules, rule), rule_sum(g, rules, rule)], -1)  # [vectors, 2]
    if change is not None:
        sums = sums + change
    top = jnp.sum(sums[:k], axis=0)
    probes = _control_variates(rules, rule, f, g, sums, known, live)
    z = 1.0 + top[0] + jnp.mean(probes[:, 0])
    h = top[1] + jnp.mean(probes[:, 1])
    value = jnp.log(z) - h / z
    per_probe = (1.0 / z + h / (z * z)) * probes[:, 0] - probes[:, 1] / z
    p = per_probe.shape[0]
    stderr = jnp.std(per_probe, ddof=1) / math.sqrt(p)
    return value, stderr


def _control_variates(rules: Rules, rule: int, f, g, sums, known: _Known, live: _Live | None):
    """Per-probe ``(f, g)`` ``[p, 2]`` minus their fitted quadratic in ``theta``, plus that quadratic's exact trace.

    The quadratic is fitted on the probes' nodes. Its per-vector moments
    ``u^T A^j u`` and exact traces carry their exact derivatives.
    """
    k = known.num_deflated
    theta, w = rules.nodes[rule], rules.weights[rule]
    scale = jnp.max(jnp.abs(theta[k:]))
    scale = jnp.where(scale > 0, scale, 1.0)
    s = theta / scale
    basis = jnp.stack([jnp.ones_like(s), s, s * s], axis=-1)  # [vectors, m, 3]
    x = jnp.stack([rule_sum(basis[..., j], rules, rule) for j in range(3)], axis=-1)  # per-vector moments
    mu = known.moments
    if live is not None:
        x, mu = x + live.moments / jnp.stack([1.0, scale, scale * scale]), mu + live.exact
    mu = mu / jnp.stack([1.0, scale, scale * scale])
    sw = jnp.sqrt(w[k:]).reshape(-1)
    B = basis[k:].reshape(-1, 3) * sw[:, None]
    col = jnp.sqrt(jnp.sum(B * B, axis=0))
    col = jnp.where(col > 0, col, 1.0)
    coef = _linalg.lstsq(B / col, jnp.stack([f[k:].reshape(-1), g[k:].reshape(-1)], -1) * sw[:, None]) / col[:, None]
    coef = jax.lax.stop_gradient(coef)
    return sums[k:] - (x[k:] - mu) @ coef

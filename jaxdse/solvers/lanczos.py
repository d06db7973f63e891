"""Gauss and Gauss-Radau quadrature of a vector's spectral measure from one Lanczos run.

For a symmetric ``A`` and a vector ``u``, ``u^T phi(A) u`` is approximated by
``|u|^2 sum_j (e_1^T y_j)^2 phi(theta_j)`` over the eigenpairs ``(theta_j, y_j)``
of Lanczos' tridiagonal matrix. :func:`quadrature` returns both rules of every
column of a block; :func:`rule_sum` applies one to a function, with derivatives
through the tridiagonal matrix (Daleckii-Krein) rather than through its eigenpairs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from matfree import decomp

from jaxdse.kernels.points import HIGHEST
from jaxdse.solvers import _linalg


class Rules(NamedTuple):
    """Gauss and Gauss-Radau rules of each vector: axis 0 is the rule, then ``[vectors, m]``.

    ``nodes`` and ``first`` (the first components of the tridiagonal matrix's
    eigenvectors) carry no derivatives; ``weights = |u|^2 first^2`` carry those
    of ``|u|^2``, and ``change = Y^T (J - stop_gradient(J)) Y`` ``[2, vectors, m, m]``
    is zero in value and carries the derivatives of the tridiagonal matrix ``J``
    in its eigenbasis (see :func:`rule_sum`).
    """

    nodes: jax.Array
    weights: jax.Array
    first: jax.Array
    change: jax.Array


def quadrature(matmat, U, num_matvecs: int, spread):
    """Lanczos Gauss quadrature for each column of ``U`` ``[n, c]``.

    Returns :class:`Rules`, each ``[2, c, m]`` for ``m = num_matvecs``: the
    ``(m-1)``-point Gauss rule (padded with a zero-weight node) and the ``m``-point
    Gauss-Radau rule with a node fixed at 0, both from one ``m``-step Lanczos run.
    Reverse-mode derivatives use matfree's adjoint of the Lanczos recurrence
    (Kraemer et al. 2024, arXiv 2405.17277), exact and without storing the
    iterations; from the tridiagonal matrix on, see :func:`rule_sum`.

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


def rule_sum(phi, slope, rules, rule: int):
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

"""Gauss and Gauss-Radau quadrature of a vector's spectral measure from one Lanczos run.

For a symmetric ``A`` and a vector ``u``, ``u^T phi(A) u`` is approximated by
``|u|^2 sum_j (e_1^T y_j)^2 phi(theta_j)`` over the eigenpairs ``(theta_j, y_j)``
of Lanczos' tridiagonal matrix. :func:`quadrature` returns both rules of every
column of a block, and each run's basis and tridiagonal matrix (:class:`Krylov`).
Nothing here carries derivatives: :func:`krylov_derivative` gives those of
``u^T phi(A) u`` with the basis held fixed, from the change of the tridiagonal
matrix, never by differentiating the Lanczos recurrence.
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

    ``weights`` sum to each vector's squared norm.
    """

    nodes: jax.Array
    weights: jax.Array


class Krylov(NamedTuple):
    """Each vector's Lanczos basis ``V`` and its ``m``-step tridiagonal matrix ``J = V A V^T = Y diag(theta) Y^T``.

    ``basis`` ``[vectors, m, n]`` (orthonormal rows, the first ``u / |u|``),
    ``nodes`` ``[vectors, m]`` (``theta``), ``vectors`` ``[vectors, m, m]``
    (``Y``), ``norm2`` ``[vectors]`` (``|u|^2``).
    """

    basis: jax.Array
    nodes: jax.Array
    vectors: jax.Array
    norm2: jax.Array


def quadrature(matmat, U, num_matvecs: int, spread):
    """Lanczos Gauss quadrature for each column of ``U`` ``[n, c]``, without derivatives.

    Returns ``(rules, krylov)``: :class:`Rules`, each ``[2, c, m]`` for ``m =
    num_matvecs``: the ``(m-1)``-point Gauss rule (padded with a zero-weight
    node) and the ``m``-point Gauss-Radau rule with a node fixed at the lower
    end of the spectrum, both from one ``m``-step Lanczos run; and the run's
    :class:`Krylov` data. The lower end is 0, or the smallest Ritz value of all
    the runs where that is below 0 beyond rounding (a kernel that is not
    positive semi-definite): a node at 0 inside the spectrum left both rules
    below the truth (-0.009 and -0.011 bits on a knn-rule kernel), a node at
    its lower end brackets it.

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
    barely moved, but a gradient through the recurrence did (cosine 0.06 to 0.98
    against the exact one, where it is 0.995 with values inside). The weight is below the
    operator's own rounding (``eps``) for the same reason: with ``eps``, DSE
    near 1 moved by 0.2 bits in float32.
    """
    tridiag = decomp.tridiag_sym(num_matvecs, materialize=True, reortho="full", custom_vjp=False)
    U, spread = jax.lax.stop_gradient((U, spread))
    n, dtype = U.shape[0], U.dtype
    # With x64 enabled the recurrence runs in float64 (matfree builds some
    # constants in the default float type).
    work = jnp.float64 if jax.config.jax_enable_x64 else dtype
    eps = jnp.finfo(dtype).eps
    extra = (spread * 0.5 * (1.0 + jnp.cos(jnp.pi * (jnp.arange(num_matvecs, dtype=work) + 0.5) / num_matvecs))).astype(
        work
    )
    fill = (eps / math.sqrt(num_matvecs)).astype(work)

    def matvec(w):
        head = jax.lax.stop_gradient(matmat(w[:n, None].astype(dtype)))[:, 0].astype(work)
        return jnp.concatenate([head, extra * w[n:]])

    def run(u):
        norm = jnp.linalg.norm(u)
        safe = jnp.where(norm > 0, norm, 1.0)
        u = jnp.concatenate([(u / safe).astype(work), jnp.full(num_matvecs, fill, work)])
        norm = norm * jnp.linalg.norm(u)
        result = tridiag(matvec, u / jnp.linalg.norm(u))
        return result.J_small, result.Q_tall[:, :n], norm

    # vmap turns the matvecs of all columns into one product with [n, c].
    J_all, bases, norms = jax.vmap(run, in_axes=1)(U)
    full = jax.vmap(_linalg.eigh)(J_all)
    # Ritz values lie inside the spectrum: their minimum over all runs is the
    # closest estimate of its lower end that the runs give.
    lowest = jnp.min(full[0])
    rounding = jnp.finfo(dtype).eps * jnp.max(jnp.abs(full[0]))
    lower = jnp.where(lowest < -rounding, lowest, 0.0)

    def rules_of(J_full, norm):
        # Gauss on the leading (m-1) x (m-1) block; Gauss-Radau adds one node
        # fixed at the lower end of the spectrum (Golub & Meurant) using the
        # last Lanczos coefficient. For g(x) = x log x, whose even derivatives
        # are > 0 and odd ones < 0 on (0, 1], Gauss underestimates and
        # Gauss-Radau overestimates u^T g(A) u.
        m = J_full.shape[0] - 1
        J, beta = J_full[:m, :m], J_full[m, m - 1]
        theta, Y = _linalg.eigh(J)
        # (J - lower)^-1_mm from J's eigenpairs; guard near-zero shifted Ritz values.
        shifted = theta - lower
        floor = jnp.finfo(J.dtype).eps * jnp.max(jnp.abs(theta))
        shifted = jnp.where(jnp.abs(shifted) > floor, shifted, jnp.where(shifted < 0, -floor, floor))
        delta_m = lower + beta**2 * jnp.sum(Y[-1, :] ** 2 / shifted)
        theta_r, Y_r = _linalg.eigh(J_full.at[m, m].set(delta_m))
        nodes = jnp.stack([jnp.pad(theta, (0, 1)), theta_r])
        first = jnp.stack([jnp.pad(Y[0, :], (0, 1)), Y_r[0, :]])
        return Rules(nodes, first**2 * norm**2)

    rules = jax.vmap(rules_of)(J_all, norms)
    # For derivatives, all m steps: the m-point Gauss rule of the full J.
    krylov = Krylov(bases, *full, norms**2)
    rules, krylov = jax.tree.map(lambda a: a.astype(dtype), (rules, krylov))
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), rules), krylov


def rule_sum(phi, rules, rule: int):
    """``sum_j w_j phi(theta_j)`` per vector ``[vectors]``, given ``phi`` at the nodes ``[vectors, m]``."""
    return jnp.sum(rules.weights[rule] * phi, axis=-1)


def krylov_derivative(phi, slope, krylov: Krylov, change):
    """``|u|^2 sum_ij y_i y_j phi[theta_i, theta_j] change_ij`` per vector ``[vectors]``.

    The first-order change of ``|u|^2 e_1^T phi(J) e_1`` when ``J = V A V^T``
    changes by ``dJ`` with the basis ``V`` held fixed, given ``phi`` and ``phi'``
    at the nodes ``[vectors, m]`` and ``change = Y^T dJ Y`` ``[vectors, m, m]``
    (Daleckii-Krein: ``y`` the first components of ``J``'s eigenvectors,
    ``phi[a, b]`` the divided difference, ``phi'`` where ``a`` and ``b`` are
    within rounding). No division by the gaps between Ritz values, which in
    float32 made derivatives through ``eigh`` noise.
    """
    nodes = krylov.nodes
    first = krylov.vectors[..., 0, :]
    a, b = nodes[..., :, None], nodes[..., None, :]
    gap = a - b
    close = jnp.abs(gap) <= jnp.sqrt(jnp.finfo(nodes.dtype).eps) * jnp.maximum(jnp.abs(a), jnp.abs(b))
    divided = jnp.where(
        close,
        0.5 * (slope[..., :, None] + slope[..., None, :]),
        (phi[..., :, None] - phi[..., None, :]) / jnp.where(close, 1.0, gap),
    )
    return krylov.norm2 * jnp.einsum("...i,...ij,...j->...", first, divided * change, first, precision=HIGHEST)

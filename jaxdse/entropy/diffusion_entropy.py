"""DSE of masked subsets of one prepared input: the entropy every public estimate uses.

:class:`DiffusionEntropy` prepares the input once (points standardised and
their bandwidth rule resolved, or a precomputed matrix) and then evaluates any
masked subset of it with the chosen solver: ``dse`` evaluates the kept rows of
its mask, DSMI its class and comparison subsets, eagerly or under
``jit``/``vmap``/``grad``. Invalid settings or non-finite kept values give NaN.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse._checks import Bandwidth
from jaxdse.entropy.spectral import entropy_of_spectrum
from jaxdse.kernels.points import ScaledPoints, prepare_points, self_sq_distances
from jaxdse.kernels.precomputed import prepare_matrix, subset_affinity
from jaxdse.kernels.precomputed import rows_finite as precomputed_rows_finite
from jaxdse.solvers.diffusion import dense_symmetric_operator, operator_from_affinity, spectrum_of
from jaxdse.solvers.memory import dense_bytes, get_memory_budget
from jaxdse.solvers.objects import SLQ, Estimate, Exact
from jaxdse.solvers.operators import blockwise_operator, dense_operator
from jaxdse.solvers.sharding import num_shards
from jaxdse.solvers.slq import slq_entropy


def exact_value(S, v, keep, valid, t, base, eigensolver: str = "auto") -> Estimate:
    """The exact :class:`Estimate` at diffusion time ``t`` of an operator from
    :meth:`DiffusionEntropy.exact_operator` (NaN where not ``valid``)."""
    value = entropy_of_spectrum(spectrum_of(S, v, keep, eigensolver), jnp.asarray(t, S.dtype), base)
    return Estimate(jnp.where(valid, value, jnp.nan), jnp.where(valid, 0.0, jnp.nan).astype(value.dtype))


@dataclasses.dataclass(frozen=True)
class DiffusionEntropy:
    """DSE of masked subsets of one prepared input (a :class:`jaxdse.mi.SubsetEntropy`).

    Static: the bandwidth rule (and its k), the solver, and whether the input is
    points or a precomputed ``"distance"``/``"affinity"`` matrix; the numbers
    ``params = (sigma, t, alpha, base)`` are traced.
    """

    rule: str = "fixed"
    k: int | None = None
    solver: object = Exact()
    precomputed: str | None = None
    standardize: bool = False

    def prepare(self, z, params, keep=None):
        bandwidth = Bandwidth(self.rule, params[0], self.k)
        if self.precomputed:
            return prepare_matrix(z, self.precomputed, bandwidth, keep)
        return prepare_points(z, bandwidth, keep, self.standardize)

    @property
    def indefinite(self) -> bool:
        """Whether the kernel need not be positive semi-definite (:func:`jaxdse._checks.may_be_indefinite`)."""
        return _checks.may_be_indefinite(self.rule, self.precomputed)

    @property
    def shares_pairwise(self) -> bool:
        # Subsets can take their squared distances from one n x n block when
        # they hold dense operators: always for Exact, for SLQ unless it is
        # blockwise (then there is no n x n array to share).
        if self.precomputed:
            return False
        if isinstance(self.solver, Exact):
            return True
        return self.solver.operator != "blockwise" and self.solver.mesh is None

    def pairwise(self, rows: ScaledPoints):
        return self_sq_distances(rows.points)

    def from_pairwise(self, d2, rows: ScaledPoints, mask, params, key) -> Estimate:
        return self(rows, mask, params, key, d2=d2)

    def subset_bytes(self, m: int, dtype) -> int:
        if isinstance(self.solver, Exact):
            return dense_bytes(m, dtype, 5 if self.solver.eigensolver == "eigh" else 4)
        if self._operator(m, dtype) == "dense":
            return dense_bytes(m, dtype, 4)
        columns = self.solver.num_probes + self.solver.deflation_rank
        per_row = 3 * self.solver.block_size + (self.solver.matvecs_for(self.indefinite, m) + 4) * columns
        return per_row * m * np.dtype(dtype).itemsize

    def _operator(self, m: int, dtype) -> str:
        solver = self.solver
        if solver.operator != "auto":
            return solver.operator
        if self.precomputed:
            return "dense"
        fits = dense_bytes(m, dtype) <= get_memory_budget(solver.memory_budget)
        return "dense" if fits and solver.mesh is None else "blockwise"

    def _finite(self, rows, keep):
        if self.precomputed:
            return precomputed_rows_finite(rows, keep)
        points, scales = rows
        return jnp.all(jnp.where(keep[:, None], jnp.isfinite(points), True)) & jnp.all(
            jnp.where(keep, jnp.isfinite(scales), True)
        )

    def _guard(self, rows, mask, params):
        """``(rows, keep, t, alpha, base, ok)``: non-finite values kept out of the solvers (NaN
        matrices can stall them), ``ok`` whether the input and settings give a value."""
        _, t, alpha, base = params
        m, dtype = rows[0].shape[0], rows[-1].dtype
        keep = jnp.ones(m, bool) if mask is None else mask
        t = jnp.asarray(t, dtype)
        alpha = jnp.asarray(alpha, dtype)
        settings_ok = (alpha >= 0) & (alpha <= 1) & _checks.valid_base(base) & (jnp.sum(keep) >= 2)
        ok = self._finite(rows, keep) & settings_ok
        rows = jax.tree.map(lambda a: jnp.where(ok, a, 0 if jnp.issubdtype(a.dtype, jnp.integer) else 1), rows)
        rows = rows._replace(scales=jnp.where(keep, rows.scales, 1.0))
        return rows, keep, t, alpha, base, ok

    def _dense(self, rows, keep, alpha, ok, d2):
        if self.precomputed:
            return operator_from_affinity(subset_affinity(rows, keep, self.precomputed), alpha, keep)
        return dense_symmetric_operator(rows, alpha, keep, None if d2 is None else jnp.where(ok, d2, 0.0))

    def exact_operator(self, rows, mask, params):
        """The exact path up to its eigenvalues: ``(S, v, keep, valid)`` for :func:`exact_value`.

        Two steps so that the operators of several inputs can be built before
        their eigenvalues are computed together: on the CPU, LAPACK's reduction
        right after XLA's multi-threaded products ran slower, its threads and
        XLA's competing for the cores (:func:`jaxdse.layerwise`).
        """
        rows, keep, t, alpha, _, ok = self._guard(rows, mask, params)
        S, v = self._dense(rows, keep, alpha, ok, None)
        return S, v, keep, ok & (t > 0) & jnp.isfinite(t)

    def __call__(self, rows, mask, params, key, d2=None) -> Estimate:
        m, dtype = rows[0].shape[0], rows[-1].dtype
        rows, keep, t, alpha, base, ok = self._guard(rows, mask, params)
        valid = ok & (t > 0) & jnp.isfinite(t)
        if isinstance(self.solver, SLQ) and self._operator(m, dtype) == "blockwise":
            value, stderr, _ = self._slq_blockwise(rows, keep, t, alpha, base, key)
        else:
            S, v = self._dense(rows, keep, alpha, ok, d2)
            if isinstance(self.solver, Exact):
                return exact_value(S, v, keep, valid, t, base, self.solver.eigensolver)
            value, stderr, _ = slq_entropy(
                dense_operator(S, v, keep), key, jnp.maximum(t, 0), base, self.solver, m, indefinite=self.indefinite
            )
        return Estimate(jnp.where(valid, value, jnp.nan), jnp.where(valid, stderr, jnp.nan))

    def _slq_blockwise(self, rows: ScaledPoints, keep, t, alpha, base, key) -> Estimate:
        solver = self.solver
        m = rows.points.shape[0]
        devices = num_shards(solver.mesh)
        block = min(solver.block_size, -(-m // devices))
        pad = (-m) % (block * devices)
        rows = ScaledPoints(
            jnp.pad(rows.points, ((0, pad), (0, 0))), jnp.pad(rows.scales, (0, pad), constant_values=1.0)
        )
        keep = jnp.pad(keep, (0, pad))
        op = blockwise_operator(rows, alpha, keep, block_size=block, mesh=solver.mesh)
        return slq_entropy(op, key, jnp.maximum(t, 0), base, solver, num_rows=m, indefinite=self.indefinite)

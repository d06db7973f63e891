"""The accuracy grid: every solver against an independent float64 reference.

One definition serves two sizes: ``benchmarks/bench_accuracy.py`` runs the full
grid and writes ``results_accuracy.md``; ``tests/test_accuracy.py`` runs a fast
tier of the same cells (small n, a few cells per family) and fails on any cell
out of tolerance.

The reference is written here in numpy float64 from the formulas alone (it
shares no code with jaxdse): Gaussian affinities with per-point bandwidths
``G_ij = exp(-|x_i - x_j|^2 / (2 s_i s_j))``, the anisotropic normalisation
``K = G / (q^alpha q^alpha^T)`` with ``q = G 1``, the symmetric operator
``D^-1/2 K D^-1/2``, all eigenvalues by LAPACK, ``p = |lambda|^t / sum`` and
the Shannon entropy in bits. Masks keep a subset of rows (the reference takes
the subset); DSMI is the plug-in estimate ``DSE(Z) - sum_c p(c) DSE(Z | c)``
with the bandwidth resolved on the whole set. The peers' kernels are written
here from their definitions too: manylatents' kNN kernel (``k = 15``, alpha 1)
and graphtools' alpha-decay kernel (PHATE's: ``knn = 5``, ``decay = 40``,
threshold ``1e-4``, alpha 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# ---------------------------------------------------------------- data families


def _gaussian(rng, n, d):
    return rng.normal(size=(n, d))


def _blobs(rng, n, d):
    centres = rng.normal(size=(4, d)) * 8.0
    labels = rng.integers(0, 4, size=n)
    return centres[labels] + rng.normal(size=(n, d))


def _manifold(rng, n, d):
    # A swiss roll in 3 of d coordinates, rotated into all of them, with a little noise.
    u = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    h = 10.0 * rng.uniform(size=n)
    roll = np.stack([u * np.cos(u), h, u * np.sin(u)], axis=1)
    basis = np.linalg.qr(rng.normal(size=(d, 3)))[0]
    return roll @ basis.T + 0.05 * rng.normal(size=(n, d))


def _low_rank(rng, n, d):
    rank = 3
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.1 * rng.normal(size=(n, d))


def _heavy_tails(rng, n, d):
    return rng.standard_t(df=1.5, size=(n, d))


def _duplicates(rng, n, d):
    # A quarter of the rows are distinct; each of the others repeats one of them exactly.
    distinct = rng.normal(size=(max(n // 4, 2), d))
    return distinct[np.concatenate([np.arange(len(distinct)), rng.integers(0, len(distinct), n - len(distinct))])]


FAMILIES = {
    "gaussian": _gaussian,
    "blobs": _blobs,
    "manifold": _manifold,
    "low_rank": _low_rank,
    "heavy_tails": _heavy_tails,
    "duplicates": _duplicates,
}


def make_data(family: str, n: int, d: int, seed: int = 0):
    """``(x [n, d] float32, labels [n] int)``: the family's points and 3 classes cut at terciles of a direction."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    x = FAMILIES[family](rng, n, d).astype(np.float32)
    score = x @ rng.normal(size=d)
    labels = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    return x, labels.astype(np.int32)


def make_mask(n: int, seed: int = 0, keep: float = 0.75):
    """A fixed boolean mask keeping about ``keep`` of the rows."""
    return np.random.default_rng([seed, 99]).uniform(size=n) < keep


# ---------------------------------------------------------------- the float64 reference


def sq_distances(x):
    x = np.asarray(x, np.float64)
    diff = x[:, None, :] - x[None, :, :] if x.shape[0] <= 1500 else None
    if diff is not None:
        return np.einsum("ijk,ijk->ij", diff, diff)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return d2


def median_distance(x):
    """``sqrt(median_{i<j} |x_i - x_j|^2)`` in float64."""
    d2 = sq_distances(x)
    return float(np.sqrt(np.median(d2[np.triu_indices(len(d2), 1)])))


def reference_scales(d2, sigma, d: int):
    """Per-point bandwidths for a number or a rule ("median", "sqrt_dim", "knn:K")."""
    n = d2.shape[0]
    if isinstance(sigma, str):
        if sigma == "median":
            return np.full(n, np.sqrt(np.median(d2[np.triu_indices(n, 1)]) / 2.0))
        if sigma == "sqrt_dim":
            return np.full(n, np.sqrt(d))
        k = int(sigma.split(":")[1]) if ":" in sigma else 7
        others = d2 + np.diag(np.full(n, np.inf))
        return np.sqrt(np.sort(others, axis=1)[:, k - 1])
    return np.full(n, float(sigma))


def reference_kernel(d2, s):
    s2 = np.outer(s, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.exp(-d2 / (2.0 * s2))
    zero = s2 == 0  # a point with k duplicates: 1 for coincident points, 0 otherwise
    g[zero] = (d2[zero] == 0).astype(np.float64)
    return g


def _neighbours(d2, k):
    """Indices ``[n, k]`` of each row's k nearest other rows (ties: the lower index first)."""
    others = d2 + np.diag(np.full(len(d2), np.inf))
    return np.argsort(others, axis=1, kind="stable")[:, :k]


def reference_knn_kernel(d2, k=15):
    """manylatents 0.1.8's kNN kernel: ``exp(-d^2 / (s_i s_j))`` on the union of the k-neighbourhoods, diagonal 1."""
    n = len(d2)
    nbr = _neighbours(d2, k)
    s = np.sqrt(d2[np.arange(n), nbr[:, -1]])
    s2 = np.outer(s, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.exp(-d2 / s2)
    w[s2 == 0] = (d2[s2 == 0] == 0).astype(np.float64)
    member = np.zeros((n, n), bool)
    member[np.repeat(np.arange(n), k), nbr.ravel()] = True
    g = np.where(member | member.T, w, 0.0)
    np.fill_diagonal(g, 1.0)
    return g


def reference_alpha_decay_kernel(d2, knn=5, decay=40.0, thresh=1e-4):
    """graphtools 2.1.0's alpha-decay kernel: ``exp(-(d / e_i)^decay)``, entries below ``thresh`` dropped, ``(A + A^T) / 2``."""
    n = len(d2)
    e = np.sqrt(d2[np.arange(n), _neighbours(d2, knn)[:, -1]])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = np.exp(-((np.sqrt(d2) / e[:, None]) ** decay))
    zero = np.broadcast_to(e[:, None] == 0, a.shape)
    a[zero] = (d2[zero] == 0).astype(np.float64)
    a[a < thresh] = 0.0
    np.fill_diagonal(a, 1.0)
    return (a + a.T) / 2.0


# name: (reference kernel, alpha, the jaxdse kernel object's constructor name and arguments)
PEER_KERNELS = {
    "manylatents": (reference_knn_kernel, 1.0, ("KNNKernel", {"k": 15})),
    "phate": (reference_alpha_decay_kernel, 0.0, ("AlphaDecayKernel", {"knn": 5, "decay": 40, "thresh": 1e-4})),
}


def reference_spectrum(g, alpha=0.0):
    q = g.sum(1)
    k = g / np.outer(q**alpha, q**alpha)
    deg = k.sum(1)
    return np.linalg.eigvalsh(k / np.sqrt(np.outer(deg, deg)))


def reference_entropy(lam, t):
    """DSE in bits of the spectrum ``lam`` for each ``t``."""
    out = []
    for ti in np.atleast_1d(t):
        p = np.abs(lam) ** ti
        p = p / p.sum()
        p = p[p > 0]
        out.append(float(-np.sum(p * np.log2(p))))
    return np.array(out)


def reference_affinity(x, sigma):
    """``(G, alpha)``: the Gaussian affinity for a bandwidth (alpha 0), or a peer's kernel ``("kernel", name)``."""
    d2 = sq_distances(x)
    if isinstance(sigma, tuple) and sigma[0] == "kernel":
        make, alpha, _ = PEER_KERNELS[sigma[1]]
        return make(d2), alpha
    return reference_kernel(d2, reference_scales(d2, sigma, x.shape[1])), 0.0


def reference_dse(x, sigma, t, *, mask=None):
    """DSE in bits ``[len(t)]`` of the kept rows of ``x``, bandwidth (or kernel) resolved on them."""
    x = np.asarray(x, np.float64)
    if mask is not None:
        x = x[np.asarray(mask, bool)]
    g, alpha = reference_affinity(x, sigma)
    return reference_entropy(reference_spectrum(g, alpha), t)


def reference_dsmi(x, labels, sigma, t):
    """Plug-in DSMI in bits: ``DSE(Z) - sum_c p(c) DSE(Z | c)``, each subset with the whole set's kernel."""
    x = np.asarray(x, np.float64)
    g, alpha = reference_affinity(x, sigma)
    total = reference_entropy(reference_spectrum(g, alpha), t)
    cond = np.zeros_like(total)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        sub = g[np.ix_(rows, rows)]
        cond = cond + len(rows) / len(labels) * reference_entropy(reference_spectrum(sub, alpha), t)
    return total - cond


# ---------------------------------------------------------------- cells


# Bandwidths: the rules, and multiples of the median distance from near the
# identity kernel (DSE near log2 n) to near the constant one (DSE near 0).
RULE_BANDWIDTHS = ("median", "knn")
MEDIAN_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0, 10.0)


@dataclasses.dataclass(frozen=True)
class Cell:
    family: str
    n: int
    d: int
    sigma: object  # a rule name, ("x median", c) or ("kernel", name of PEER_KERNELS)
    t: tuple
    masked: bool = False
    quantity: str = "dse"  # or "dsmi"

    @property
    def kernel(self):
        """The peer kernel's name, or None for a Gaussian bandwidth."""
        return self.sigma[1] if isinstance(self.sigma, tuple) and self.sigma[0] == "kernel" else None

    def label(self):
        if self.kernel:
            sigma = f"{self.kernel} kernel"
        else:
            sigma = self.sigma if isinstance(self.sigma, str) else f"{self.sigma[1]:g} x median"
        what = "DSMI" if self.quantity == "dsmi" else "DSE"
        return f"{what} {self.family} n={self.n} d={self.d} sigma={sigma}{' masked' if self.masked else ''}"


def grid(
    *,
    n: int,
    d: int,
    multiples=MEDIAN_MULTIPLES,
    rules=RULE_BANDWIDTHS,
    t=(1.0, 10.0, 100.0),
    masked_multiples=(1.0,),
    dsmi_multiples=(1.0,),
    families=tuple(FAMILIES),
    kernels=tuple(PEER_KERNELS),
    dsmi_kernels=("manylatents",),
):
    """The cells of one size of the grid."""
    cells = []
    for fam in families:
        for sigma in (*rules, *(("x median", c) for c in multiples), *(("kernel", k) for k in kernels)):
            cells.append(Cell(fam, n, d, sigma, tuple(t)))
        for k in dsmi_kernels:
            cells.append(Cell(fam, n, d, ("kernel", k), tuple(t), quantity="dsmi"))
        for c in masked_multiples:
            cells.append(Cell(fam, n, d, ("x median", c), tuple(t), masked=True))
        for c in dsmi_multiples:
            cells.append(Cell(fam, n, d, ("x median", c), tuple(t), quantity="dsmi"))
    return cells


def resolve(cell: Cell, x):
    """``(sigma for jaxdse, sigma for the reference, mask or None)`` of a cell on data ``x``."""
    mask = make_mask(cell.n) if cell.masked else None
    if isinstance(cell.sigma, str) or cell.kernel:
        return cell.sigma, cell.sigma, mask
    kept = x if mask is None else x[mask]
    s = cell.sigma[1] * median_distance(kept)
    return s, s, mask


def reference(cell: Cell):
    """The cell's float64 reference values ``[len(t)]`` (bits)."""
    x, labels = make_data(cell.family, cell.n, cell.d)
    _, sigma, mask = resolve(cell, x)
    if cell.quantity == "dsmi":
        return reference_dsmi(x, labels, sigma, np.array(cell.t))
    return reference_dse(x, sigma, np.array(cell.t), mask=mask)


# ---------------------------------------------------------------- solvers under test


@dataclasses.dataclass(frozen=True)
class Method:
    """A solver configuration with its tolerance (bits, absolute) and its number of keys.

    ``plus_indicator``: the tolerance of a cell is ``tolerance + stderr`` (the
    low-rank solver's error indicator), else ``tolerance``. ``takes``: the cell
    kinds it supports (``"rules"`` for the bandwidth rules, ``"kernels"`` for
    the peers' kernel objects).
    """

    name: str
    make: object  # () -> solver
    tolerance: float
    x64: bool = False
    num_keys: int = 1
    stochastic: bool = False
    plus_indicator: bool = False
    takes: tuple = ("rules", "kernels")

    def applies(self, cell) -> bool:
        if cell.kernel:
            return "kernels" in self.takes
        if isinstance(cell.sigma, str) and cell.sigma.startswith("knn"):
            return "knn" in self.takes
        return True

    def within(self, errors, stderrs):
        """Whether every error of a cell is within this method's tolerance."""
        allowed = self.tolerance + (np.asarray(stderrs) if self.plus_indicator else 0.0)
        return bool(np.all(np.abs(errors) <= allowed))


def methods(num_keys: int = 8):
    import jaxdse

    return [
        Method("exact float32", lambda: jaxdse.Exact(), 1e-3),
        Method("exact float64", lambda: jaxdse.Exact(), 1e-6, x64=True),
        Method(
            "SLQ dense",
            lambda: jaxdse.SLQ(operator="dense"),
            0.01,
            num_keys=num_keys,
            stochastic=True,
            takes=("rules", "knn"),
        ),
        Method(
            "SLQ blockwise",
            lambda: jaxdse.SLQ(operator="blockwise", block_size=256),
            0.01,
            num_keys=num_keys,
            stochastic=True,
            takes=("rules", "knn"),
        ),
        # A quarter of the rows as landmarks; within 0.01 bits plus its error indicator (the stderr field).
        Method(
            "Nystrom n/4",
            lambda n: jaxdse.Nystrom(num_landmarks=n // 4, block_size=256),
            0.01,
            num_keys=num_keys,
            stochastic=True,
            plus_indicator=True,
            takes=("rules",),
        ),
    ]


_COMPILED = {}


def _program(method: Method, rule, masked: bool, quantity: str, num_keys: int):
    """One jitted program per method and cell kind: cells of one shape share its compilation.

    Arguments ``(x, sigma, t, mask, labels, keys)``; ``sigma`` is traced for fixed
    bandwidths and static (``rule``) for the rules.
    """
    import jax

    import jaxdse

    name = (method.name, rule, masked, quantity, num_keys)
    if name not in _COMPILED:
        make = method.make

        def one(x, sigma, t, mask, labels, key):
            n = x.shape[0]
            solver = make(n) if method.plus_indicator else make()
            if isinstance(rule, tuple):  # a peer's kernel
                fn, alpha, (cls, kwargs) = PEER_KERNELS[rule[1]]
                spec = dict(kernel=getattr(jaxdse, cls)(**kwargs), alpha=alpha)
            else:
                spec = dict(sigma=sigma if rule is None else rule)
            if quantity == "dsmi":
                est = jaxdse.dsmi_terms(
                    x, labels, t=t, solver=solver, key=key, estimator="plugin", num_classes=3, max_class_size=n, **spec
                )
            else:
                est = jaxdse.dse_estimate(x, t=t, mask=mask if masked else None, solver=solver, key=key, **spec)
            return est.value, est.stderr

        batched = jax.vmap(one, in_axes=(None, None, None, None, None, 0))
        _COMPILED[name] = jax.jit(batched)
    return _COMPILED[name]


def evaluate(cell: Cell, method: Method):
    """``(values [keys, T], stderrs [keys, T])`` of the method on the cell, in bits."""
    import contextlib

    import jax
    import jax.numpy as jnp

    x, labels = make_data(cell.family, cell.n, cell.d)
    sigma, _, mask = resolve(cell, x)
    rule = sigma if isinstance(sigma, (str, tuple)) else None
    context = jax.enable_x64(True) if method.x64 else contextlib.nullcontext()
    with context:
        dtype = np.float64 if method.x64 else np.float32
        program = _program(method, rule, mask is not None, cell.quantity, method.num_keys)
        keys = jax.random.split(jax.random.key(1000), method.num_keys)
        value, stderr = program(
            jnp.asarray(x, dtype),
            jnp.asarray(0.0 if rule is not None else sigma, dtype),
            jnp.asarray(cell.t, dtype),
            jnp.asarray(np.ones(cell.n, bool) if mask is None else mask),
            jnp.asarray(labels),
            keys,
        )
        return np.asarray(value, np.float64), np.asarray(stderr, np.float64)


def summary(errors, stderrs):
    """Per-cell figures: worst |error|, |mean error| over keys, rms error, mean stderr, coverage of 2 stderr."""
    errors, stderrs = np.asarray(errors), np.asarray(stderrs)
    return dict(
        worst=float(np.max(np.abs(errors))),
        bias=float(np.max(np.abs(np.mean(errors, axis=0)))),
        rms=float(np.sqrt(np.mean(errors**2))),
        stderr=float(np.mean(stderrs)),
        covered=np.abs(errors) <= 2.0 * stderrs,
    )


__all__ = [
    name for name in dir() if not name.startswith("_") and name not in ("annotations", "math", "np", "dataclasses")
]

"""The fast tier of the accuracy grid (``benchmarks/accuracy.py``): every solver against a float64 reference.

n = 400, d = 32, six data families, bandwidths from the rules and from 0.25, 1
and 4 times the median distance, the peers' kernels (manylatents' kNN kernel,
PHATE's alpha-decay kernel), t = 1 and 10, a masked cell and DSMI cells per
family. Each cell's error is checked at the solver's absolute tolerance (for the
low-rank solver: 0.01 bits plus its error indicator); the stochastic solver's
mean error over its keys (bias), the coverage of its error bar, and the bar's
width against the actual error are checked over the grid.
``python benchmarks/bench_accuracy.py`` runs the full grid.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import accuracy as grid

N, D, KEYS = 400, 32, 4
CELLS = grid.grid(n=N, d=D, multiples=(0.25, 1.0, 4.0), t=(1.0, 10.0))
METHODS = {m.name: m for m in grid.methods(num_keys=KEYS)}
SLACK = 1e-5  # bits: float32 rounding of the value itself
BIAS = 0.002  # bits: |mean error over the keys| beyond 3 standard errors of that mean
FAST = ("exact float32", "SLQ dense", "Nystrom n/4")
# Kernels that are not positive semi-definite: the adaptive "knn" rule and the
# peers' kNN kernels. Eigenvalues below 0 give |x|^t a kink inside the spectrum,
# and SLQ's two quadrature rules no longer bracket the value (measured at
# n = 400: -0.019 bits on the manifold, -0.005 on low rank plus noise; -0.008 on
# the manifold at n = 1000).
INDEFINITE = ("knn",)


def _is_indefinite(cell):
    return bool(cell.kernel) or (isinstance(cell.sigma, str) and cell.sigma in INDEFINITE)


@pytest.fixture(scope="module")
def results():
    """``{(method, cell): (errors [keys, T], stderrs [keys, T])}`` for the fast methods."""
    out = {}
    for cell in CELLS:
        ref = grid.reference(cell)
        for name in FAST:
            if METHODS[name].applies(cell):
                values, stderrs = grid.evaluate(cell, METHODS[name])
                out[name, cell] = (values - ref, stderrs)
    return out


def _cells(method, *, indefinite):
    m = METHODS[method]
    return [c for c in CELLS if m.applies(c) and (_is_indefinite(c) == indefinite or not m.stochastic)]


@pytest.mark.parametrize("method", FAST)
def test_every_cell_within_tolerance(results, method):
    m = METHODS[method]
    bad = [
        f"{c.label()}: {np.max(np.abs(results[method, c][0])):.2e} (stderr {np.mean(results[method, c][1]):.1e})"
        for c in _cells(method, indefinite=False)
        if not m.within(*results[method, c])
    ]
    rule = f"{m.tolerance} bits" + (" + its error indicator" if m.plus_indicator else "")
    assert not bad, f"{method} out of its tolerance {rule}:\n" + "\n".join(bad)


def test_every_kind_of_cell_is_checked(results):
    """The peers' kernels are checked by the exact solver, the rules by every solver that takes them."""
    kernels = {c.kernel for c in CELLS if ("exact float32", c) in results and c.kernel}
    assert kernels == set(grid.PEER_KERNELS)
    assert sum(("Nystrom n/4", c) in results for c in CELLS) >= 6 * 6


@pytest.mark.xfail(strict=True, reason="SLQ on an indefinite kernel (knn rule): biased by up to 0.02 bits at n = 400")
def test_slq_on_indefinite_kernels(results):
    errors = [results["SLQ dense", c][0] for c in CELLS if _is_indefinite(c) and ("SLQ dense", c) in results]
    assert max(float(np.max(np.abs(np.mean(e, 0)))) for e in errors) <= BIAS


def test_slq_unbiased(results):
    """The mean error over the keys is within 0.002 bits plus 3 standard errors of the mean (key-to-key spread)."""
    bad = []
    for c in _cells("SLQ dense", indefinite=False):
        e = results["SLQ dense", c][0]
        allowed = BIAS + 3.0 * np.std(e, axis=0, ddof=1) / np.sqrt(KEYS)
        if np.any(np.abs(np.mean(e, 0)) > allowed):
            bad.append(f"{c.label()}: mean error {np.round(np.mean(e, 0), 4)}, allowed {np.round(allowed, 4)}")
    assert not bad, "SLQ biased:\n" + "\n".join(bad)


def test_slq_error_bar_covers(results):
    """At least 95% of (cell, key, t) have |error| <= 2 stderr."""
    covered = np.concatenate(
        [
            (np.abs(e) <= 2.0 * s + SLACK).ravel()
            for c in _cells("SLQ dense", indefinite=False)
            for e, s in [results["SLQ dense", c]]
        ]
    )
    assert covered.mean() >= 0.95, f"coverage {covered.mean():.3f} over {covered.size}"


def test_slq_error_bar_not_too_wide(results):
    """The bar is honest in width: at most 15x the rms error in each cell, and errors / stderr have rms >= 0.5.

    A bar twice as wide as it should be fails the second (the rms of error / stderr
    is about 0.77 here); an inflated bar that is many times the actual error, the
    first.
    """
    z, wide = [], []
    for c in _cells("SLQ dense", indefinite=False):
        e, s = results["SLQ dense", c]
        for j in range(e.shape[1]):
            if np.mean(s[:, j]) > 1e-4:  # cells whose bar is above rounding
                z.append(e[:, j] / s[:, j])
                ratio = np.mean(s[:, j]) / max(float(np.sqrt(np.mean(e[:, j] ** 2))), SLACK)
                if ratio > 15.0:
                    wide.append(f"{c.label()} t={c.t[j]:g}: stderr / rms error = {ratio:.1f}")
    assert not wide, "error bar far wider than the error:\n" + "\n".join(wide)
    rms = float(np.sqrt(np.mean(np.concatenate(z) ** 2)))
    assert rms >= 0.5, f"rms of error / stderr is {rms:.2f}: the bar is wider than the error it describes"


# The slower tier: the blockwise operator, float64, and the low-entropy case at n = 2000.

SLOW_FAMILIES = ("gaussian", "duplicates")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["exact float64", "SLQ blockwise"])
def test_slow_methods_within_tolerance(method):
    m = METHODS[method]
    bad = []
    for c in [
        c for c in CELLS if c.family in SLOW_FAMILIES and m.applies(c) and not (m.stochastic and _is_indefinite(c))
    ]:
        v, s = grid.evaluate(c, m)
        e = v - grid.reference(c)
        if np.max(np.abs(e)) > m.tolerance or (
            m.stochastic and np.any(np.abs(e.mean(0)) > BIAS + 3 * e.std(0, ddof=1) / np.sqrt(KEYS))
        ):
            bad.append(f"{c.label()}: worst {np.max(np.abs(e)):.2e}, mean {np.round(e.mean(0), 4)}")
    assert not bad, f"{method}:\n" + "\n".join(bad)


@pytest.mark.slow
def test_slq_low_entropy_large_n():
    """Gaussian data, d = 256, n = 2000, sigma = 60 (DSE 0.93 bits): the case a rounding floor biased by -0.038."""
    import jax

    import jaxdse

    x = np.random.default_rng(13).normal(size=(2000, 256)).astype(np.float32)
    ref = grid.reference_dse(x, 60.0, np.array([1.0]))[0]
    est = jax.vmap(lambda k: jaxdse.dse_estimate(x, sigma=60.0, solver=jaxdse.SLQ(), key=k))(
        jax.random.split(jax.random.key(0), 4)
    )
    err = np.asarray(est.value) - ref
    assert np.max(np.abs(err)) <= 0.01 and abs(np.mean(err)) <= BIAS, err
    assert np.all(np.abs(err) <= 2 * np.asarray(est.stderr) + SLACK), (err, est.stderr)

"""Matrix-free DSE (``solver=jaxdse.SLQ(...)``) against the exact solver and the reference package.

    python benchmarks/bench_slq.py            # accuracy and speed, writes results_slq.md
    python benchmarks/bench_slq.py --speed    # only the speed comparison, added to results_slq.md
    python benchmarks/bench_slq.py --large    # n = 100,000, d = 64 (minutes), appends
    python benchmarks/bench_slq.py --gradient [1|5|top] [--probes P]  # SLQ gradient against the exact one, appends
    python benchmarks/bench_slq.py --dsmi     # DSMI with SLQ against exact DSMI, n = 4000, appends
    python benchmarks/bench_slq.py --dsmi-large [N]  # DSMI with SLQ, N = 50,000 by default: time, peak RSS
    python benchmarks/bench_slq.py --edges    # DSE near 0 and near log2 n, duplicates: coverage, appends

Accuracy: |slq - exact| at n in {2000, 8000} on the digits (tiled with N(0, 1)
pixel noise) and on Gaussian data with d = 256, for bandwidths giving DSE near 1,
near 5 and near log2 n, over several keys. Speed: compile and steady-state time
(after a warm-up call) of the exact path, of slq, and of the reference
``dse_dsmi.diffusion_spectral_entropy`` in the same run.
"""

from __future__ import annotations

import os
import platform
import resource
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from provenance import stamp  # noqa: E402  (benchmarks/ is on the path when run as a script)

import jaxdse
from jaxdse import SLQ
from jaxdse.data import load_digits
from jaxdse.mi.engine import pad_size

OUT = Path(__file__).with_name("results_slq.md")
NUM_KEYS = 5
# Settings used for n = 100,000 (fewer passes over the kernel); checked at n = 8000.
LARGE = dict(num_probes=16, num_matvecs=12, deflation_rank=8, operator="blockwise", block_size=512)
DEFAULT = SLQ()


def header():
    from importlib.metadata import version

    return [
        f"- {stamp()}",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores (shared), jax {jax.__version__} ({jax.default_backend()}), "
        f"matfree {version('matfree')}, numpy {np.__version__}",
        f"- command: `python {' '.join(sys.argv)}`",
        "- float32 throughout; times in seconds; 'steady' = second call of the jitted function "
        "unless a section says otherwise.",
        f"- {load()} (at the start)",
    ]


def gaussian(n, d=256, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def digits(n, seed=0):
    xd, _ = load_digits()
    rng = np.random.default_rng(seed)
    return (xd[np.arange(n) % len(xd)] + rng.normal(size=(n, xd.shape[1]))).astype(np.float32)


def timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, first - (time.perf_counter() - t0), time.perf_counter() - t0


def exact_fn(sigma):
    return jax.jit(lambda x: jaxdse.dse(x, sigma=sigma))


def slq_estimate(x, k, sigma, **kw):
    return tuple(jaxdse.dse_estimate(x, key=k, sigma=sigma, solver=SLQ(**kw))[:2])


def slq_fn(sigma, **kw):
    return jax.jit(jax.vmap(lambda x, k: slq_estimate(x, k, sigma, **kw), in_axes=(None, 0)))


def accuracy(lines):
    lines += [
        "",
        f"### Accuracy against the exact path (default settings: {DEFAULT.num_probes} probes, "
        f"{DEFAULT.matvecs_for()} Lanczos steps, deflation rank {DEFAULT.deflation_rank})",
        "",
        f"{NUM_KEYS} keys each; error = slq - exact in bits; 'cover' = share of keys with |error| <= 2 stderr.",
        "",
        "| data | n | sigma | exact DSE | mean error | max abs error | mean stderr | cover |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = {
        ("gaussian d=256", 2000): (60.0, 21.0, 5.0),
        ("digits+noise", 2000): (105.0, 38.0, 5.0),
        ("gaussian d=256", 8000): (80.0, 24.0, 5.0),
        ("digits+noise", 8000): (140.0, 45.0, 5.0),
        ("gaussian d=64 (large-n settings)", 8000): (8.0, 16.0),
    }
    keys = jax.random.split(jax.random.key(0), NUM_KEYS)
    for (name, n), sigmas in table.items():
        x = jnp.asarray(digits(n) if name.startswith("digits") else gaussian(n, 64 if "64" in name else 256))
        for sigma in sigmas:
            exact = float(exact_fn(sigma)(x))
            kw = LARGE if "large" in name else {}
            value, stderr = slq_fn(sigma, **kw)(x, keys)
            err = np.asarray(value) - exact
            se = np.asarray(stderr)
            lines.append(
                f"| {name} | {n} | {sigma:g} | {exact:.4f} | {err.mean():+.4f} | {np.abs(err).max():.4f} | "
                f"{se.mean():.4f} | {np.mean(np.abs(err) <= 2 * se):.1f} |"
            )
            print(lines[-1], flush=True)


def speed(lines):
    from dse_dsmi import diffusion_spectral_entropy as reference

    lines += ["", "### Speed", "", "| n | d | what | compile | steady | DSE |", "|---|---|---|---|---|---|"]
    key = jax.random.key(1)
    sigma = 24.0
    rows = {}
    for n in (8000, 20000):
        x = jnp.asarray(gaussian(n))
        f = jax.jit(lambda x, k: slq_estimate(x, k, sigma))
        (value, se), compile_s, steady = timed(f, x, key)
        rows[("slq", n)] = steady
        lines.append(
            f"| {n} | 256 | slq (dense operator) | {compile_s:.2f} | {steady:.2f} | {float(value):.4f} +- {float(se):.4f} |"
        )
        print(lines[-1], flush=True)
        if n == 8000:
            value, compile_s, steady = timed(exact_fn(sigma), x)
            rows[("exact", n)] = steady
            lines.append(
                f"| {n} | 256 | exact (eigenvalues only) | {compile_s:.2f} | {steady:.2f} | {float(value):.4f} |"
            )
            print(lines[-1], flush=True)
    x = gaussian(4000).astype(np.float64)
    reference(x, gaussian_kernel_sigma=sigma)
    t0 = time.perf_counter()
    value = reference(x, gaussian_kernel_sigma=sigma)
    ref_4000 = time.perf_counter() - t0
    lines.append(f"| 4000 | 256 | reference dse_dsmi | - | {ref_4000:.2f} | {value:.4f} |")
    ref_20000 = ref_4000 * (20000 / 4000) ** 3
    lines += [
        "",
        f"- n = 8000: exact / slq = {rows[('exact', 8000)] / rows[('slq', 8000)]:.1f}x (steady state, same run).",
        f"- n = 20000: the reference would take about {ref_20000:.0f} s (its O(n^3) eigensolver extrapolated "
        f"from {ref_4000:.2f} s at n = 4000, times (20000/4000)^3; it would also subsample to 10000 rows), "
        f"slq takes {rows[('slq', 20000)]:.2f} s: {ref_20000 / rows[('slq', 20000)]:.0f}x.",
    ]
    print("\n".join(lines[-3:]), flush=True)


def large(lines):
    n, d, sigma = 100_000, 64, 8.0
    x = jnp.asarray(gaussian(n, d))
    f = jax.jit(lambda x, k: slq_estimate(x, k, sigma, **LARGE))
    t0 = time.perf_counter()
    value, se = jax.block_until_ready(f(x, jax.random.key(2)))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    lines += [
        "",
        "### n = 100,000, d = 64 (blockwise operator, no n x n array)",
        "",
        f"- settings: sigma {sigma}, {LARGE}",
        f"- DSE = {float(value):.4f} +- {float(se):.4f} bits; wall time {wall:.0f} s including compilation "
        f"(one call); peak RSS {rss:.2f} GiB.",
    ]
    print("\n".join(lines[-4:]), flush=True)


def load():
    return "load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def median_time(fn, *args, calls=3):
    """Compile (first call minus a steady call) and the median of ``calls`` steady calls, in seconds."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times))
    return out, first - steady, steady


def sigma_for(x, target, lo, hi, steps=12):
    """The sigma at which the exact DSE of ``x`` is ``target`` (bisection in log sigma; DSE falls with sigma)."""
    f = jax.jit(lambda x, s: jaxdse.dse(x, sigma=s))
    for _ in range(steps):
        mid = float(np.sqrt(lo * hi))
        if float(f(x, mid)) > target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def gradient(lines, only=None, keys=4, num_probes=DEFAULT.num_probes):
    n, d = 2000, 64
    x = jnp.asarray(gaussian(n, d, seed=3))
    top = float(np.log2(n))
    targets = {"near 1": 1.0, "near 5": 5.0, "near log2 n": 0.98 * top}
    if only is not None:  # e.g. --gradient top: one row only
        targets = {k: v for k, v in targets.items() if k.endswith(only)}
    lines += [
        "",
        f"### Gradient of DSE with respect to x: SLQ against exact (n = {n}, d = {d}, Gaussian data)",
        "",
        f"- SLQ settings: {num_probes} probes"
        + (" (the default)" if num_probes == DEFAULT.num_probes else f" (`SLQ(num_probes={num_probes})`)")
        + f", {DEFAULT.matvecs_for()} Lanczos steps, deflation rank {DEFAULT.deflation_rank}, float32, keys 0 to {keys - 1}; the",
        f"  sigmas come from a bisection of the exact DSE (near log2 n = 0.98 log2 n = {0.98 * top:.2f} bits: at log2 n",
        "  exactly the gradient vanishes). Cosine = <g_slq, g_exact> / (|g_slq| |g_exact|) over all n x d entries,",
        "  mean and lowest over the keys; the relative error |g_slq - g_exact| / |g_exact| is the mean over the keys.",
        "  Times: `jax.jit(jax.value_and_grad(...))`, compile apart, steady = median of 2 calls (key 0), both",
        "  solvers in the same run.",
        f"- {load()} (before the run)",
        "",
        "| target | sigma | exact DSE | SLQ DSE (key 0) | cosine mean | cosine lowest | relative error | exact compile |"
        " exact steady | SLQ compile | SLQ steady | exact / SLQ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cosines = []
    for name, target in targets.items():
        sigma = sigma_for(x, target, 0.5, 200.0, steps=9)
        fe = jax.jit(jax.value_and_grad(lambda x: jaxdse.dse(x, sigma=sigma)))
        fs = jax.jit(
            jax.value_and_grad(lambda x, k: jaxdse.dse(x, sigma=sigma, solver=SLQ(num_probes=num_probes), key=k))
        )
        (ve, ge), ce, se = median_time(fe, x, calls=2)
        (vs, _), cs, ss = median_time(fs, x, jax.random.key(0), calls=2)
        ge = np.asarray(ge, np.float64).ravel()
        cos, rel = [], []
        for k in range(keys):
            gs = np.asarray(fs(x, jax.random.key(k))[1], np.float64).ravel()
            cos.append(ge @ gs / (np.linalg.norm(ge) * np.linalg.norm(gs)))
            rel.append(np.linalg.norm(gs - ge) / np.linalg.norm(ge))
        cosines.append(min(cos))
        lines.append(
            f"| {name} | {sigma:.3g} | {float(ve):.4f} | {float(vs):.4f} | {np.mean(cos):.5f} | {min(cos):.5f} | "
            f"{np.mean(rel):.3f} | {ce:.2f} | {se:.2f} | {cs:.2f} | {ss:.2f} | {se / ss:.2f}x |"
        )
        print(lines[-1], flush=True)
    met = "met" if min(cosines) >= 0.99 else "missed"
    lines += ["", f"- target cosine >= 0.99 for every key: {met} (lowest {min(cosines):.4f}). {load()} (after the run)"]


def dsmi_accuracy(lines, n=4000, d=64, classes=10, keys=10):
    x, labels = jaxdse.data.gaussian_blobs(n, d, classes, spread=4.0, separation=6.0, seed=0)
    sigma = 6.0
    m = pad_size(n // classes, n)
    settings = dict(sigma=sigma, num_classes=classes, max_class_size=m)
    fe = jax.jit(lambda z, y, k: tuple(jaxdse.dsmi_terms(z, y, key=k, **settings)[:2]))
    fs = jax.jit(lambda z, y, k: tuple(jaxdse.dsmi_terms(z, y, key=k, solver=SLQ(), **settings)[:2]))
    key_list = list(jax.random.split(jax.random.key(4), keys))
    lines += [
        "",
        f"### DSMI with the SLQ solver against exact DSMI (n = {n}, d = {d}, {classes} Gaussian blobs)",
        "",
        f"- data: `jaxdse.data.gaussian_blobs({n}, {d}, {classes}, spread=4, separation=6, seed=0)` (overlapping",
        f"  blobs, so the DSMI is well inside its range), sigma {sigma}, t 1, estimator 'subsample', 5 repetitions,",
        f"  shared comparison subsets, classes of {n // classes}; the same {keys} keys for both solvers (the key draws",
        "  the comparison subsets and, for SLQ, the probes). Default SLQ settings, float32.",
        f"- {load()} (before the run)",
        "",
        "| solver | mean DSMI (bits) | sd over keys | mean stderr | compile (s) | steady, median (s) |",
        "|---|---|---|---|---|---|",
    ]
    out = {}
    for name, f in (("exact", fe), ("SLQ", fs)):
        _, c, _ = median_time(f, x, labels, key_list[0], calls=1)
        times, vals, ses = [], [], []
        for k in key_list:
            t0 = time.perf_counter()
            v, se = jax.block_until_ready(f(x, labels, k))
            times.append(time.perf_counter() - t0)
            vals.append(float(v))
            ses.append(float(se))
        out[name] = np.array(vals)
        lines.append(
            f"| {name} | {np.mean(vals):.4f} | {np.std(vals):.4f} | {np.mean(ses):.4f} | {c:.2f} | {np.median(times):.3f} |"
        )
        print(lines[-1], flush=True)
    diff = out["SLQ"] - out["exact"]
    gap = abs(diff.mean())
    lines += [
        "",
        f"- |mean SLQ - mean exact| = {gap:.4f} bits (target within 0.05 bits: {'met' if gap <= 0.05 else 'missed'});"
        f" per key, SLQ - exact ranges over [{diff.min():+.4f}, {diff.max():+.4f}] bits. {load()} (after the run)",
    ]
    print(lines[-1], flush=True)


def dsmi_large(lines, n):
    d, classes = 64, 10
    x, labels = jaxdse.data.gaussian_blobs(n, d, classes, spread=4.0, separation=6.0, seed=0)
    sigma = 6.0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines += [
        "",
        f"### DSMI with the SLQ solver at n = {n:,} (d = {d}, {classes} classes)",
        "",
        f"- data: `jaxdse.data.gaussian_blobs({n}, {d}, {classes}, spread=4, separation=6, seed=0)`, sigma {sigma}, "
        f"default SLQ and DSMI settings (5 repetitions, shared comparison subsets, classes of {n // classes}), float32,",
        "  one eager call `jaxdse.dsmi_terms(z, y, key=0, sigma=6.0, solver=jaxdse.SLQ())` (wall time includes",
        "  compilation), then a second call with key 1 (steady).",
        f"- {load()} (before the run); peak RSS before the call {rss_before:.2f} GiB (data and imports).",
    ]
    t0 = time.perf_counter()
    r = jax.block_until_ready(jaxdse.dsmi_terms(x, labels, key=0, sigma=sigma, solver=SLQ()))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r2 = jax.block_until_ready(jaxdse.dsmi_terms(x, labels, key=1, sigma=sigma, solver=SLQ()))
    second = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines += [
        f"- DSMI = {float(r.value):.4f} +- {float(r.stderr):.4f} bits (key 0), {float(r2.value):.4f} +- "
        f"{float(r2.stderr):.4f} (key 1); first call {first:.1f} s (with compilation), second call {second:.1f} s;",
        f"  peak RSS of the process (ru_maxrss) {rss:.2f} GiB. {load()} (after the run)",
    ]
    print("\n".join(lines[-2:]), flush=True)


def edges(lines, keys=50):
    n = 300
    rng = np.random.default_rng(5)
    uniform = rng.uniform(size=(n, 3)).astype(np.float32)
    dup = np.repeat(rng.uniform(size=(n // 3, 3)), 3, axis=0).astype(np.float32)  # each point three times
    near_top = sigma_for(jnp.asarray(uniform), 0.995 * np.log2(n), 1e-4, 1.0, steps=20)
    cases = [
        ("uniform in [0,1]^3", uniform, 100.0),
        ("uniform in [0,1]^3", uniform, near_top),
        ("100 points x 3 exact duplicates", dup, 100.0),
        ("100 points x 3 exact duplicates", dup, near_top),
    ]
    lines += [
        "",
        f"### The ends of the range and exact duplicates (n = {n}, d = 3, {keys} keys)",
        "",
        "- default SLQ settings, float32; sigma 100 gives DSE near 0; the small sigma is bisected so that the exact",
        f"  DSE of the uniform points is within 1% of log2 n = {np.log2(n):.4f} (0.995 log2 n). 'cover' = share of the",
        f"  {keys} keys with |SLQ - exact| <= 2 stderr (target >= 90%); 'exact' is the exact solver in float64 (the",
        "  float32 exact value beside it), SLQ runs in float32.",
        f"- {load()} (before the run)",
        "",
        "| data | sigma | exact DSE (float64) | exact (float32) | SLQ min | SLQ max | max abs error | mean stderr | cover |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    key_arr = jax.random.split(jax.random.key(6), keys)
    covers = []
    for name, x, sigma in cases:
        x = jnp.asarray(x)
        exact32 = float(jaxdse.dse(x, sigma=sigma))
        with jax.enable_x64(True):
            exact = float(jaxdse.dse(np.asarray(x, np.float64), sigma=sigma))
        value, stderr = slq_fn(sigma)(x, key_arr)
        value, stderr = np.asarray(value, np.float64), np.asarray(stderr, np.float64)
        err = value - exact
        cover = float(np.mean(np.abs(err) <= 2 * stderr))
        covers.append(cover)
        lines.append(
            f"| {name} | {sigma:.4g} | {exact:.5f} | {exact32:.5f} | {value.min():.5f} | {value.max():.5f} | {np.abs(err).max():.1e} | "
            f"{stderr.mean():.1e} | {cover:.0%} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"- target cover >= 90%: {'met' if min(covers) >= 0.9 else 'missed'} (lowest {min(covers):.0%}). {load()} (after the run)",
    ]


def append(fn, *args):
    lines = header()
    try:
        fn(lines, *args)
    except BaseException:  # what was measured is kept if the run is stopped part-way
        lines += ["", f"- stopped part-way (no further figures); {load()}"]
        raise
    finally:
        with OUT.open("a") as fh:
            fh.write("\n".join(lines) + "\n")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))  # so that append() keeps the rows
    if "--gradient" in sys.argv:
        rest, probes = sys.argv[sys.argv.index("--gradient") + 1 :], DEFAULT.num_probes
        if "--probes" in rest:
            i = rest.index("--probes")
            probes = int(rest[i + 1])
            del rest[i : i + 2]
        only = {"top": "log2 n"}.get(rest[0], rest[0]) if rest else None
        return append(gradient, only, 4, probes)
    if "--dsmi" in sys.argv:
        return append(dsmi_accuracy)
    if "--dsmi-large" in sys.argv:
        rest = sys.argv[sys.argv.index("--dsmi-large") + 1 :]
        return append(dsmi_large, int(rest[0]) if rest else 50_000)
    if "--edges" in sys.argv:
        return append(edges)
    lines = header()
    if "--speed" in sys.argv:
        # Rerun only the speed comparison and add it to the section, e.g. on a
        # quieter machine than the one the full run had.
        lines = ["", "### Speed, rerun (`python benchmarks/bench_slq.py --speed`)"]
        speed(lines)
        with OUT.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
        return
    if "--large" in sys.argv:
        large(lines)
        with OUT.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
        return
    accuracy(lines)
    speed(lines)
    OUT.write_text("## Matrix-free DSE (solver=SLQ())\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

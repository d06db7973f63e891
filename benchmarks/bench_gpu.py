"""jaxdse on one accelerator: parity, exact and stochastic DSE, DSMI, gradients, training steps.

One prepared script for one GPU (H100/H200; finishes within 5 minutes). Each
section runs in its own process with a time limit, and within a section the
sizes run smallest first with a deadline checked between sizes, so one slow part
cannot lose the rest: what was skipped, and why, is written out. Compile time
(lowering plus XLA compilation) is reported apart from the steady state (median
of three calls); peak device memory comes from ``device.memory_stats()`` where
the backend reports it (GPUs do, CPUs do not).

Sections:
  parity    jaxdse against the reference package ``dse_dsmi`` (float32 and float64)
  exact     exact DSE, d = 256, n = 1000 ... 32000, both eigensolvers ("auto":
            Householder tridiagonal reduction then bisection; "eigh": the full
            symmetric eigendecomposition, cuSOLVER on GPUs), next to a plain
            PyTorch port (cdist, exp, normalise, ``torch.linalg.eigvalsh``) when
            torch is installed
  slq       stochastic DSE (blockwise operator), d = 64, n = 100,000 / 400,000 / 1,000,000
  dsmi      DSMI, 10 classes, d = 64, n = 2000 / 10,000 / 50,000
  grad      value and gradient of exact DSE, n = 4000
  training  the example CNN's jitted train step with and without DSE, batch 128 / 512 / 2048
  layers    layerwise: 25 layers of 800 tokens, d = 768, in one call, against the authors' loop (dse_dsmi)
  nystrom   the low-rank solver (m = 1024) at n = 1,000,000 and 10,000,000, d = 64

    python benchmarks/bench_gpu.py                      # on the GPU; writes benchmarks/results_gpu.md
    python benchmarks/bench_gpu.py --quick --out /tmp/results_gpu.md   # tiny sizes, CPU, under a minute
    python benchmarks/bench_gpu.py --sections exact slq # some sections only

Needs jax (with its CUDA plugin on a GPU), numpy, flax and optax; uses
``dse_dsmi`` and torch when they are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from provenance import stamped  # noqa: E402  (benchmarks/ is on the path when run as a script)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FULL = dict(
    parity=dict(n=2000, d=32, budget=25),
    exact=dict(sizes=[1000, 2000, 4000, 8000, 16000, 32000], d=256, budget=90),
    slq=dict(sizes=[100_000, 400_000, 1_000_000], d=64, budget=60),
    dsmi=dict(sizes=[2000, 10_000, 50_000], d=64, budget=30),
    grad=dict(n=4000, d=64, budget=20),
    training=dict(sizes=[128, 512, 2048], budget=30),
    layers=dict(layers=25, n=800, d=768, budget=40),
    nystrom=dict(sizes=[1_000_000, 10_000_000], d=64, m=1024, budget=60),
)
TOTAL_S = 390  # the whole run, start-up of every section's process included
QUICK = dict(
    parity=dict(n=120, d=8, budget=40),
    exact=dict(sizes=[100, 200], d=16, budget=40),
    slq=dict(sizes=[3000], d=8, budget=40),
    dsmi=dict(sizes=[200], d=8, budget=40),
    grad=dict(n=100, d=8, budget=40),
    training=dict(sizes=[32], budget=40),
    layers=dict(layers=3, n=100, d=16, budget=40),
    nystrom=dict(sizes=[5000], d=8, m=64, budget=40),
)
SECTIONS = tuple(FULL)


# ---------------------------------------------------------------- helpers (inside a section's process)


def _jaxdse():
    sys.path.insert(0, str(ROOT))
    import jaxdse

    return jaxdse


def _training_module():
    """The training helpers: ``jaxdse.monitor.training`` (new name) or ``jaxdse.nn``."""
    try:
        from jaxdse.monitor import training
    except ImportError:
        from jaxdse import nn as training
    return training


def exact_dse(eigensolver: str, sigma=10.0):
    """``x -> DSE`` with the exact path and the given eigensolver ("auto" or "eigh")."""
    jaxdse = _jaxdse()
    solver = jaxdse.Exact(eigensolver=eigensolver)
    return lambda x: jaxdse.dse(x, sigma=sigma, solver=solver)


def slq_dse(key, sigma, **settings):
    """``x -> DSE`` by stochastic Lanczos quadrature with the blockwise operator."""
    jaxdse = _jaxdse()
    solver = jaxdse.SLQ(operator="blockwise", **settings)
    return lambda x: jaxdse.dse(x, sigma=sigma, solver=solver, key=key)


def peak_memory():
    """Peak bytes in use on the first device so far, or None where not reported."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def timed_jit(fn, *args, repeats=3):
    """``(compile_s, steady_s, value)``: lower+compile once, then the median of ``repeats`` calls."""
    import jax

    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))  # warm up
    if time.perf_counter() - start > 2.0:
        repeats = 1  # a slow call: one more is enough, and keeps the section in its budget
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times), out


def gaussian(n, d, seed=0, dtype="float32"):
    import numpy as np

    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


class Deadline:
    """Seconds left in a section; a size starts only while ``ok()``."""

    def __init__(self, budget):
        self.end = time.perf_counter() + budget

    def ok(self, fraction=0.0):
        return time.perf_counter() < self.end - fraction


# ---------------------------------------------------------------- sections


def section_parity(cfg, quick):
    import jax

    rows = []
    x = gaussian(cfg["n"], cfg["d"], dtype="float64") * 3.0
    try:
        import dse_dsmi
    except ImportError:
        return dict(rows=rows, note="dse_dsmi is not installed: no parity check")
    reference = float(dse_dsmi.diffusion_spectral_entropy(x))
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            for solver in ("auto", "eigh"):
                value = float(jax.jit(exact_dse(solver))(jax.numpy.asarray(x, dtype)))
                rows.append(
                    dict(
                        dtype=dtype, eigensolver=solver, jaxdse=value, reference=reference, diff=abs(value - reference)
                    )
                )
    return dict(rows=rows, n=cfg["n"], d=cfg["d"])


def torch_dse(x, sigma=10.0):
    """Plain PyTorch port: cdist, exp, normalise, eigvalsh; bits."""
    import torch

    xt = torch.as_tensor(x, device="cuda" if torch.cuda.is_available() else "cpu")
    d2 = torch.cdist(xt, xt) ** 2
    G = torch.exp(-d2 / (2 * sigma**2))
    deg = G.sum(1)
    S = G / torch.sqrt(deg[:, None] * deg[None, :])
    w = torch.linalg.eigvalsh(S).abs()
    p = w / w.sum()
    return float(-(p * torch.log2(torch.where(p > 0, p, 1.0))).sum())


def _torch_time(x):
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    torch_dse(x)
    sync()  # warm up (cuSOLVER handles, kernels)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        value = torch_dse(x)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def section_exact(cfg, quick):
    import jax

    jaxdse = _jaxdse()
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    stats = jax.devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        jaxdse.set_memory_budget(int(0.8 * stats["bytes_limit"]))
    deadline = Deadline(cfg["budget"])
    rows, skipped = [], []
    alive = {"auto": True, "eigh": True, "torch": have_torch}
    last = {}
    for n in cfg["sizes"]:
        x = jax.numpy.asarray(gaussian(n, cfg["d"]))
        for solver in ("auto", "eigh", "torch"):
            if not alive[solver]:
                continue
            # Cubic cost: the next size's calls take about 8x the last one's (compile stays about the same).
            if not deadline.ok(last.get(solver, 0.0)):
                skipped.append(f"{solver} n >= {n}: section budget")
                alive[solver] = False
                continue
            try:
                if solver == "torch":
                    steady, value = _torch_time(gaussian(n, cfg["d"]))
                    compile_s = None
                else:
                    compile_s, steady, value = timed_jit(exact_dse(solver), x)
            except Exception as err:  # e.g. out of memory at the largest size
                skipped.append(f"{solver} n = {n}: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                alive[solver] = False
                continue
            last[solver] = (compile_s or 0.0) + 8 * 5 * steady
            rows.append(dict(n=n, solver=solver, compile=compile_s, steady=steady, value=float(value)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if not have_torch:
        skipped.append("torch is not installed: no PyTorch column")
    return dict(rows=rows, skipped=skipped, d=cfg["d"], peak=peak_memory())


def section_slq(cfg, quick):
    import jax

    deadline = Deadline(cfg["budget"])
    settings = dict(num_probes=16, num_matvecs=20, deflation_rank=16, block_size=2048)
    if quick:
        settings = dict(num_probes=4, num_matvecs=6, deflation_rank=2, block_size=512)
    rows, skipped, last = [], [], 0.0
    sigma = float(cfg["d"]) ** 0.5
    for n in cfg["sizes"]:
        # Quadratic cost: the next size takes about (n / previous n)^2 the last one.
        growth = (n / rows[-1]["n"]) ** 2 if rows else 1.0
        if not deadline.ok(growth * last):
            skipped.append(f"n >= {n}: section budget")
            break
        x = jax.numpy.asarray(gaussian(n, cfg["d"]))
        compile_s, steady, value = timed_jit(slq_dse(jax.random.key(0), sigma, **settings), x, repeats=1)
        last = compile_s + 2 * growth * steady
        rows.append(dict(n=n, compile=compile_s, steady=steady, value=float(value)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return dict(rows=rows, skipped=skipped, d=cfg["d"], sigma=sigma, settings=settings, peak=peak_memory())


def section_dsmi(cfg, quick):
    import jax
    import numpy as np

    jaxdse = _jaxdse()
    deadline = Deadline(cfg["budget"])
    rows, skipped, last = [], [], 0.0
    for n in cfg["sizes"]:
        growth = (n / rows[-1]["n"]) ** 3 if rows else 1.0
        if not deadline.ok(last * growth**0.5):  # compile stays, the calls grow
            skipped.append(f"n >= {n}: section budget")
            break
        y = np.arange(n) % 10
        z = gaussian(n, cfg["d"]) + y[:, None].astype("float32")
        fn = lambda z, key: jaxdse.dsmi(z, y, key=key, sigma=float(cfg["d"]) ** 0.5)  # noqa: E731
        compile_s, steady, value = timed_jit(fn, jax.numpy.asarray(z), jax.random.key(0))
        last = compile_s + 4 * steady
        rows.append(dict(n=n, compile=compile_s, steady=steady, value=float(value)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return dict(rows=rows, skipped=skipped, d=cfg["d"], peak=peak_memory())


def section_grad(cfg, quick):
    import jax

    x = jax.numpy.asarray(gaussian(cfg["n"], cfg["d"]))
    rows = []
    for solver in ("auto", "eigh"):
        fn = jax.value_and_grad(exact_dse(solver, sigma=float(cfg["d"]) ** 0.5))
        compile_s, steady, (value, grad) = timed_jit(fn, x)
        rows.append(
            dict(
                n=cfg["n"],
                solver=solver,
                compile=compile_s,
                steady=steady,
                value=float(value),
                finite=bool(jax.numpy.all(jax.numpy.isfinite(grad))),
            )
        )
    return dict(rows=rows, d=cfg["d"], peak=peak_memory())


def section_training(cfg, quick):
    import jax
    import numpy as np
    import optax
    from flax import nnx

    training = _training_module()
    from jaxdse import zoo

    deadline = Deadline(cfg["budget"])
    rows, skipped, last = [], [], 0.0
    graphdef, params = nnx.split(zoo.CNN(width=16, depth=2, features=64, conv_std=1.0, rngs=0))
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    for batch in cfg["sizes"]:
        growth = (batch / rows[-1]["batch"]) ** 3 if rows else 1.0
        if not deadline.ok(last * growth**0.5):  # compile stays, the DSE part grows
            skipped.append(f"batch >= {batch}: section budget")
            break
        rng = np.random.default_rng(0)
        x = jax.numpy.asarray(rng.random((batch, 8, 8, 1), dtype=np.float32))
        y = jax.numpy.asarray(rng.integers(10, size=batch).astype(np.int32))
        row = dict(batch=batch)
        for measure in (False, True):
            step = training.make_train_step(apply=lambda p, x: nnx.merge(graphdef, p)(x), tx=optimizer, monitor=measure)
            compile_s, steady, _ = timed_jit(step, params, opt_state, x, y, repeats=3 if quick else 10)
            row[f"compile_{measure}"], row[f"steady_{measure}"] = compile_s, steady
        last = row["compile_False"] + row["compile_True"] + 12 * row["steady_True"]
        rows.append(row)
    return dict(rows=rows, skipped=skipped, peak=peak_memory())


def section_layers(cfg, quick):
    """One ``layerwise`` call for every layer (tokens, L2-normalised, sigma 1) against a loop of dse_dsmi."""
    import jax
    import numpy as np

    jaxdse = _jaxdse()
    L, n, d = cfg["layers"], cfg["n"], cfg["d"]
    rng = np.random.default_rng(0)
    h = np.cumsum(rng.normal(size=(L, n, d)).astype(np.float32), axis=0)  # layers drift apart with depth
    settings = dict(normalize="l2", **jaxdse.recipes.transformer_dispersion())
    compile_s, steady, value = timed_jit(lambda h: jaxdse.layerwise(h, **settings).value, jax.numpy.asarray(h))
    row = dict(L=L, n=n, d=d, compile=compile_s, steady=steady, last=float(value[-1]))
    try:
        import dse_dsmi
    except ImportError:
        return dict(rows=[row], note="dse_dsmi is not installed: no reference loop", peak=peak_memory())
    unit = h / (np.linalg.norm(h, axis=-1, keepdims=True) + 1e-12)
    start = time.perf_counter()
    ref = [dse_dsmi.diffusion_spectral_entropy(u.astype(np.float64), gaussian_kernel_sigma=1, t=1) for u in unit]
    row.update(reference=time.perf_counter() - start, diff=float(np.max(np.abs(np.asarray(value) - ref))))
    return dict(rows=[row], peak=peak_memory())


def section_nystrom(cfg, quick):
    """The Nystrom solver on Gaussian blobs, sizes smallest first while the budget allows."""
    import jax
    import numpy as np

    jaxdse = _jaxdse()
    deadline = Deadline(cfg["budget"])
    rows, skipped, last = [], [], 0.0
    solver = jaxdse.Nystrom(num_landmarks=cfg["m"], block_size=8192 if not quick else 1024)
    for n in cfg["sizes"]:
        growth = n / rows[-1]["n"] if rows else 1.0  # linear in n
        if not deadline.ok(growth * last):
            skipped.append(f"n >= {n}: section budget")
            break
        rng = np.random.default_rng(0)
        x = (rng.normal(size=(10, cfg["d"])) * 4.0)[rng.integers(0, 10, n)] + rng.normal(size=(n, cfg["d"]))
        x = jax.numpy.asarray(x.astype(np.float32))
        fn = lambda x: jaxdse.dse_estimate(x, sigma=2.0 * cfg["d"] ** 0.5, solver=solver, key=0)  # noqa: E731
        compile_s, steady, est = timed_jit(fn, x, repeats=1)
        last = compile_s + 2 * growth * steady
        rows.append(dict(n=n, compile=compile_s, steady=steady, value=float(est.value), indicator=float(est.stderr)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del x
    return dict(rows=rows, skipped=skipped, d=cfg["d"], m=cfg["m"], peak=peak_memory())


def section_info(cfg, quick):
    import jax

    versions = {}
    for p in ("jax", "jaxlib", "flax", "optax", "numpy", "matfree", "dse-dsmi", "torch"):
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    device = jax.devices()[0]
    return dict(
        device=f"{device.platform}: {getattr(device, 'device_kind', '')} (x{jax.device_count()})",
        host=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        versions=versions,
    )


# ---------------------------------------------------------------- driver


def run_section(name, cfg, quick, platform_name, remaining=None):
    """Run one section in a fresh process, bounded by its budget plus start-up; its JSON or an error."""
    env = dict(os.environ)
    # Allocate on demand: torch shares the device with jax in the exact section.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if platform_name:
        env["JAX_PLATFORMS"] = platform_name
    limit = cfg.get("budget", 60) + (60 if quick else 15)  # the budget gates new sizes; a started one may overrun
    if remaining is not None:
        if remaining < 10:
            return dict(error="not run: the whole benchmark's time was spent", rows=[], wall=0.0)
        limit = int(min(limit, remaining))
    command = [sys.executable, __file__, "--run-section", name, "--config", json.dumps(cfg)]
    if quick:
        command.append("--quick")
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as err:
        partial = (
            [
                json.loads(line)
                for line in (err.stderr or b"").decode(errors="replace").splitlines()
                if line.startswith("{")
            ]
            if isinstance(err.stderr, bytes)
            else []
        )
        return dict(error=f"killed after {limit} s (time limit)", rows=partial, wall=time.perf_counter() - start)
    if proc.returncode != 0:
        return dict(
            error=f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1][:300] if proc.stderr else ''}",
            rows=[],
            wall=time.perf_counter() - start,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def _ms(s):
    return "" if s is None else f"{1e3 * s:.1f}"


def _s(s):
    return "" if s is None else f"{s:.2f}"


def _mib(b):
    return "not reported" if b is None else f"{b / 2**20:.0f} MiB"


def write(results, out, command, quick):
    info = results.get("info", {})
    lines = [
        "## jaxdse on one accelerator",
        "",
        f"Command: `{command}`  ",
        f"Device: {info.get('device', '?')}; host: {info.get('host', '?')}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items()),
        "",
        "Each section ran in its own process with a time limit; sizes ran smallest first and a size started only",
        "while the section's budget allowed it. Compile = lowering plus XLA compilation (paid once per shape);",
        "steady = median of repeated calls of the compiled function; peak = the device's peak bytes in use in that",
        "section's process.",
    ]
    if quick:
        lines += ["", "**Quick run (tiny sizes): a check that the script works, not a measurement.**"]

    def status(name):
        r = results.get(name, {})
        notes = []
        if "error" in r:
            notes.append(f"Section stopped: {r['error']}.")
        for s in r.get("skipped", []):
            notes.append(f"Skipped: {s}.")
        if r.get("note"):
            notes.append(r["note"] + ".")
        if "wall" in r:
            notes.append(f"Section wall time {r['wall']:.0f} s; peak device memory {_mib(r.get('peak'))}.")
        return [" ".join(notes), ""] if notes else [""]

    r = results.get("parity", {})
    lines += [
        "",
        f"### Parity with dse_dsmi (n = {r.get('n')}, d = {r.get('d')}, sigma 10, t 1)",
        "",
        "| dtype | eigensolver | jaxdse (bits) | dse_dsmi (bits) | difference |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['dtype']} | {x['eigensolver']} | {x['jaxdse']:.7f} | {x['reference']:.7f} | {x['diff']:.1e} |"
        for x in r.get("rows", [])
    ]
    lines += [""] + status("parity")

    r = results.get("exact", {})
    lines += [
        f'### Exact DSE, d = {r.get("d")}: tridiagonal+bisection ("auto") vs eigh vs PyTorch',
        "",
        "| n | solver | compile (s) | steady (ms) | DSE (bits) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['n']} | {x['solver']} | {_s(x['compile'])} | {_ms(x['steady'])} | {x['value']:.4f} |"
        for x in r.get("rows", [])
    ]
    lines += [""] + status("exact")

    r = results.get("slq", {})
    lines += [
        f"### Stochastic DSE (SLQ, blockwise), d = {r.get('d')}, sigma = sqrt(d), {r.get('settings')}",
        "",
        "| n | compile (s) | steady (s) | DSE (bits) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {x['n']} | {_s(x['compile'])} | {_s(x['steady'])} | {x['value']:.4f} |" for x in r.get("rows", [])]
    lines += [""] + status("slq")

    r = results.get("dsmi", {})
    lines += [
        f"### DSMI, 10 classes, d = {r.get('d')}",
        "",
        "| n | compile (s) | steady (ms) | DSMI (bits) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {x['n']} | {_s(x['compile'])} | {_ms(x['steady'])} | {x['value']:.4f} |" for x in r.get("rows", [])]
    lines += [""] + status("dsmi")

    r = results.get("grad", {})
    lines += [
        "### Value and gradient of exact DSE",
        "",
        "| n | eigensolver | compile (s) | steady (ms) | DSE (bits) | gradient finite |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['n']} | {x['solver']} | {_s(x['compile'])} | {_ms(x['steady'])} | {x['value']:.4f} | {x['finite']} |"
        for x in r.get("rows", [])
    ]
    lines += [""] + status("grad")

    r = results.get("training", {})
    lines += [
        "### Training step of the example CNN with and without DSE",
        "",
        "| batch | step (ms) | step with DSE (ms) | ratio | compile (s) | compile with DSE (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['batch']} | {_ms(x['steady_False'])} | {_ms(x['steady_True'])} | "
        f"{x['steady_True'] / x['steady_False']:.1f}x | {_s(x['compile_False'])} | {_s(x['compile_True'])} |"
        for x in r.get("rows", [])
    ]
    lines += [""] + status("training")

    r = results.get("layers", {})
    lines += [
        "### Layer-wise DSE: every layer in one `layerwise` call (tokens, L2-normalised, sigma 1, t 1)",
        "",
        "| layers | tokens | d | compile (s) | steady (ms) | dse_dsmi loop (s, CPU) | speed-up | max difference (bits) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['L']} | {x['n']} | {x['d']} | {_s(x['compile'])} | {_ms(x['steady'])} | "
        + (
            f"{x['reference']:.2f} | {x['reference'] / x['steady']:.0f}x | {x['diff']:.1e} |"
            if "reference" in x
            else "- | - | - |"
        )
        for x in r.get("rows", [])
    ]
    lines += [""] + status("layers")

    r = results.get("nystrom", {})
    lines += [
        f"### Low-rank DSE (Nystrom, m = {r.get('m')}), 10 Gaussian blobs, d = {r.get('d')}",
        "",
        "| n | compile (s) | steady (s) | DSE (bits) | indicator (bits) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['n']} | {_s(x['compile'])} | {_s(x['steady'])} | {x['value']:.4f} | {x['indicator']:.4f} |"
        for x in r.get("rows", [])
    ]
    lines += [""] + status("nystrom")
    Path(out).write_text(stamped("\n".join(lines).rstrip() + "\n"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU, under a minute")
    parser.add_argument("--out", default=str(HERE / "results_gpu.md"))
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--run-section", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_section:  # inside a section's own process
        fn = globals()[f"section_{args.run_section}"]
        print(json.dumps(fn(json.loads(args.config or "{}"), args.quick)), flush=True)
        return 0

    plan = QUICK if args.quick else FULL
    platform_name = "cpu" if args.quick else None
    command = ("python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    start = time.perf_counter()  # TOTAL_S counts from here, the info section's process included
    results = {"info": run_section("info", {"budget": 30}, args.quick, platform_name)}
    print(results["info"], flush=True)

    def report(name):
        r = results[name]
        print(
            f"{name}: {len(r.get('rows', []))} rows in {r.get('wall', 0):.0f} s"
            + (f"; {r['error']}" if "error" in r else "")
            + "".join(f"; skipped {s}" for s in r.get("skipped", [])),
            flush=True,
        )

    if args.quick:
        # Tiny CPU runs are dominated by compilation: two sections at a time. On an accelerator the
        # sections run one after the other, each alone on the device.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            futures = {name: pool.submit(run_section, name, plan[name], True, platform_name) for name in args.sections}
            for name in args.sections:
                results[name] = futures[name].result()
                report(name)
    else:
        for name in args.sections:
            remaining = TOTAL_S - (time.perf_counter() - start)
            results[name] = run_section(name, plan[name], False, platform_name, remaining)
            report(name)
    write(results, args.out, command, args.quick)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

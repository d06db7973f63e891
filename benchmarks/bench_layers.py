"""Layer-wise DSE: jaxdse.layerwise against loops over layers (and prompts), in the same run.

Tokens: L = 25 layers of n = 800 tokens, d = 768 and 4096, rows L2-normalised,
sigma = 1, exact solver. Compared: ``jaxdse.layerwise`` (compile time apart
from the steady state), a Python loop of the authors'
``dse_dsmi.diffusion_spectral_entropy(x, gaussian_kernel_sigma=1)`` and a
Python loop of a jitted ``jaxdse.dse``. Prompt: B = 64 prompts of up to 128
tokens (random lengths, masked), d = 768, against a loop over layers and
prompts of a jitted masked ``jaxdse.dse`` and of the reference on the kept rows.

    python benchmarks/bench_layers.py            # writes benchmarks/results_layers.md
    python benchmarks/bench_layers.py --repeats 1 --dims 768
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import provenance

import jaxdse

HERE = Path(__file__).resolve().parent


def timed(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def hidden_states(rng, L, shape, d):
    """Layers drifting from noise towards a low-rank structure (so DSE changes with depth)."""
    base = rng.normal(size=shape + (16,)) @ rng.normal(size=(16, d))
    out = []
    for i in range(L):
        w = i / max(L - 1, 1)
        out.append((w * base + (1 - w) * 4 * rng.normal(size=shape + (d,))).astype(np.float32))
    return np.stack(out)


def bench_tokens(d, L, n, repeats, reference):
    rng = np.random.default_rng(d)
    h = hidden_states(rng, L, (n,), d)  # [L, n, d]
    hj = jnp.asarray(h)
    start = time.perf_counter()
    first = jax.block_until_ready(jaxdse.layerwise(hj, normalize="l2", sigma=1.0).value)
    first_s = time.perf_counter() - start
    ours, ours_s = timed(lambda: jaxdse.layerwise(hj, normalize="l2", sigma=1.0).value, repeats)

    one = jax.jit(lambda x: jaxdse.dse(x / jnp.linalg.norm(x, axis=-1, keepdims=True), sigma=1.0))
    start = time.perf_counter()
    jax.block_until_ready(one(hj[0]))
    loop_compile = time.perf_counter() - start
    loop, loop_s = timed(lambda: jnp.stack([one(hj[i]) for i in range(L)]), repeats)

    row = dict(
        d=d,
        first=first_s,
        compile=first_s - ours_s,
        ours=ours_s,
        loop=loop_s,
        loop_compile=loop_compile,
        loop_err=float(np.max(np.abs(np.asarray(loop) - np.asarray(ours)))),
    )
    if reference is not None:
        hu = unit(h.astype(np.float64))
        start = time.perf_counter()
        ref = [reference(hu[i], gaussian_kernel_sigma=1) for i in range(L)]
        row["ref"] = time.perf_counter() - start
        row["ref_err"] = float(np.max(np.abs(np.asarray(ref) - np.asarray(ours))))
    row["values"] = np.asarray(first)
    return row


def bench_prompt(d, L, B, T, repeats, reference):
    rng = np.random.default_rng(1)
    h = hidden_states(rng, L, (B, T), d)  # [L, B, T, d]
    lengths = rng.integers(16, T + 1, size=B)
    mask = np.arange(T)[None] < lengths[:, None]
    hj, mj = jnp.asarray(h), jnp.asarray(mask)
    start = time.perf_counter()
    jax.block_until_ready(jaxdse.layerwise(hj, mask=mj, granularity="prompt", sigma=1.0).value)
    first_s = time.perf_counter() - start
    ours, ours_s = timed(lambda: jaxdse.layerwise(hj, mask=mj, granularity="prompt", sigma=1.0).value, repeats)

    one = jax.jit(lambda x, m: jaxdse.dse(x, sigma=1.0, mask=m))  # padded shape: one compilation
    start = time.perf_counter()
    jax.block_until_ready(one(hj[0, 0], mj[0]))
    loop_compile = time.perf_counter() - start
    loop, loop_s = timed(
        lambda: jnp.stack([jnp.stack([one(hj[i, b], mj[b]) for b in range(B)]) for i in range(L)]), max(1, repeats - 1)
    )
    row = dict(
        d=d,
        first=first_s,
        compile=first_s - ours_s,
        ours=ours_s,
        loop=loop_s,
        loop_compile=loop_compile,
        loop_err=float(np.max(np.abs(np.asarray(loop) - np.asarray(ours)))),
        lengths=lengths,
    )
    if reference is not None:
        start = time.perf_counter()
        ref = [
            [reference(h[i, b][mask[b]].astype(np.float64), gaussian_kernel_sigma=1) for b in range(B)]
            for i in range(L)
        ]
        row["ref"] = time.perf_counter() - start
        row["ref_err"] = float(np.max(np.abs(np.asarray(ref) - np.asarray(ours))))
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", type=int, nargs="+", default=[768, 4096])
    ap.add_argument("--layers", type=int, default=25)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results_layers.md"))
    args = ap.parse_args()
    try:
        from dse_dsmi import diffusion_spectral_entropy as reference
    except ImportError:
        reference = None
    head = provenance.commit()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    lines = [
        "## Layer-wise DSE: `layerwise` against loops over layers",
        "",
        f"commit {head.strip()}, {date}, command: `python {' '.join(['benchmarks/bench_layers.py'] + sys.argv[1:])}`",
        "",
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores; load average "
        f"(1, 5, 15 min) at the start {load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f} "
        "(absolute times vary by about 10% between runs on this machine; each ratio compares methods timed in "
        "the same run).",
        "",
        f"### Tokens: L = {args.layers}, n = {args.n}, L2-normalised rows, sigma = 1, exact solver",
        "",
        "Seconds for all layers; steady state is the median of "
        f"{args.repeats} calls after the first. Ratios: the other method's time / layerwise's steady state.",
        "",
        "| d | layerwise first call | of which compile | layerwise steady | jaxdse.dse loop (jitted) | "
        "its compile | dse_dsmi loop | vs dse_dsmi | vs dse loop | max abs diff (loop, ref) bits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in args.dims:
        r = bench_tokens(d, args.layers, args.n, args.repeats, reference)
        ref = f"{r['ref']:.2f}" if "ref" in r else "n/a"
        ratio = f"{r['ref'] / r['ours']:.2f}x" if "ref" in r else "n/a"
        lines.append(
            f"| {d} | {r['first']:.2f} | {r['compile']:.2f} | {r['ours']:.2f} | {r['loop']:.2f} | "
            f"{r['loop_compile']:.2f} | {ref} | {ratio} | {r['loop'] / r['ours']:.2f}x | "
            f"{r['loop_err']:.1e}, {r.get('ref_err', float('nan')):.1e} |"
        )
        print(lines[-1], flush=True)
        lines.append("")
        lines.append(
            f"DSE by layer at d = {d} (bits): " + ", ".join(f"{v:.3f}" for v in r["values"][::4]) + " (every 4th)"
        )
        lines.append("")
    B, T = 64, 128
    r = bench_prompt(768, args.layers, B, T, args.repeats, reference)
    ref = f"{r['ref']:.2f}" if "ref" in r else "n/a"
    ratio = f"{r['ref'] / r['ours']:.2f}x" if "ref" in r else "n/a"
    lines += [
        "",
        f"### Prompt: L = {args.layers}, B = {B} prompts of {r['lengths'].min()} to {r['lengths'].max()} tokens "
        f"(padded to {T}, masked), d = 768, sigma = 1, exact solver",
        "",
        "| layerwise first call | of which compile | layerwise steady | jaxdse.dse loop over layers x prompts "
        "(jitted, masked) | its compile | dse_dsmi loop (kept rows) | vs dse_dsmi | vs dse loop | "
        "max abs diff (loop, ref) bits |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r['first']:.2f} | {r['compile']:.2f} | {r['ours']:.2f} | {r['loop']:.2f} | {r['loop_compile']:.2f} | "
        f"{ref} | {ratio} | {r['loop'] / r['ours']:.2f}x | {r['loop_err']:.1e}, {r.get('ref_err', float('nan')):.1e} |",
        "",
    ]
    print(lines[-2], flush=True)
    load = os.getloadavg()
    lines.append(f"Load average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

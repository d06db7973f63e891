"""Cost of measuring during training: the example CNN's jitted train step with and without DSE.

:func:`jaxdse.nn.make_train_step` with ``measure=False`` (one Adam step of the
cross-entropy) and ``measure=True`` (the same step, plus DSE of the batch's
penultimate features, sigma 10, t 1, computed inside the step from the forward
pass it already made), both jitted, on 8x8 digit-sized inputs. Compile time
(lowering plus XLA compilation) is measured apart from the steady state (the
median of repeated calls, the two variants interleaved so that load on a shared
machine hits both alike). Ratio = steady time with DSE / without.

    python benchmarks/bench_training.py                 # batch sizes 128 and 512
    python benchmarks/bench_training.py --batch-sizes 128 512 --repeats 30

Writes benchmarks/results_training.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # see the note in the written results

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxdse import training as nn  # noqa: E402

HERE = Path(__file__).resolve().parent


def machine():
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "flax", "optax", "numpy")}
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax device {jax.devices()[0].platform}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )


def bench(batch, repeats, width, depth, features, conv_std):
    model, params = nn.make_model(jax.random.key(0), width=width, depth=depth, features=features, conv_std=conv_std)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, 8, 8, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(10, size=batch).astype(np.int32))
    args = (params, opt_state, x, y)
    compiled, compile_s = {}, {}
    for measure in (False, True):
        step = jax.jit(nn.make_train_step(model, optimizer, measure=measure))
        start = time.perf_counter()
        compiled[measure] = step.lower(*args).compile()
        compile_s[measure] = time.perf_counter() - start
        jax.block_until_ready(compiled[measure](*args))  # warm up
    times = {False: [], True: []}
    for _ in range(repeats):
        for measure in (False, True):
            start = time.perf_counter()
            out = jax.block_until_ready(compiled[measure](*args))
            times[measure].append(time.perf_counter() - start)
    entropy = float(out[3])
    steady = {m: statistics.median(t) for m, t in times.items()}
    return dict(batch=batch, compile=compile_s, steady=steady, ratio=steady[True] / steady[False], dse=entropy)


def write(rows, command, width, depth, features, conv_std):
    lines = [
        "## Measuring during training: train step with and without DSE",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        f"The example CNN (`jaxdse.nn.CNN`, width {width}, depth {depth}, {features} penultimate features, 8x8x1",
        f"inputs, conv kernels ~ N(0, {conv_std:g}^2) so that the batch's features are spread as during training:",
        "DSE column), one jitted Adam step from `jaxdse.nn.make_train_step`; \"with DSE\" also computes DSE (sigma 10, t 1,",
        "default exact method) of the batch's penultimate features inside the same compiled step. Steady state = median",
        "of repeated calls (the two variants interleaved); compile = lowering plus XLA compilation, paid once.",
        "",
        "| batch | step (ms) | step with DSE (ms) | ratio | compile (s) | compile with DSE (s) | DSE (bits) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {1e3 * r['steady'][False]:.2f} | {1e3 * r['steady'][True]:.2f} | {r['ratio']:.1f}x | "
            f"{r['compile'][False]:.2f} | {r['compile'][True]:.2f} | {r['dse']:.2f} |"
        )
    lines += [
        "",
        "DSE needs the eigenvalues of a batch x batch matrix, O(batch^3), against O(batch) for the small network, so",
        "its share grows with the batch. Measuring every step is rarely needed: once an epoch on a probe set (as the",
        "examples' evaluator does) costs one such call per epoch.",
        "The machine is shared and has 2 cores: absolute times move between runs; the ratios come from the same run.",
        "BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1): with several processes on 2 cores, multi-threaded",
        "OpenBLAS made one 360 x 360 eigendecomposition over 100x slower in our runs.",
        "",
    ]
    (HERE / "results_training.md").write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument(
        "--conv-std", type=float, default=1.0,
        help="conv kernels ~ N(0, std^2), so that the features are spread (DSE of a few bits) as during training",
    )
    args = parser.parse_args(argv)
    command = ("python benchmarks/bench_training.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    print(machine())
    print(f"{'batch':>6} {'step ms':>9} {'+DSE ms':>9} {'ratio':>7} {'compile s':>10} {'+DSE compile s':>15} {'DSE bits':>9}")
    rows = []
    for b in args.batch_sizes:
        r = bench(b, args.repeats, args.width, args.depth, args.features, args.conv_std)
        rows.append(r)
        print(
            f"{b:>6} {1e3 * r['steady'][False]:>9.2f} {1e3 * r['steady'][True]:>9.2f} {r['ratio']:>6.1f}x "
            f"{r['compile'][False]:>10.2f} {r['compile'][True]:>15.2f} {r['dse']:>9.2f}"
        )
    write(rows, command, args.width, args.depth, args.features, args.conv_std)
    print(f"wrote {HERE / 'results_training.md'}")


if __name__ == "__main__":
    main()

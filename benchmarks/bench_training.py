"""Cost of measuring during training: the example CNN's jitted train step with and without DSE.

:func:`jaxdse.monitor.training.make_train_step` with ``monitor=False`` (one Adam step of the
cross-entropy) and ``monitor=True`` (the same step, plus DSE of the batch's
penultimate features, sigma 10, t 1, computed inside the step from the forward
pass it already made), both jitted, on 8x8 digit-sized inputs. Compile time
(lowering plus XLA compilation) is measured apart from the steady state (the
median of repeated calls, the two variants interleaved so that load on a shared
machine hits both alike). Ratio = steady time with DSE / without.

    python benchmarks/bench_training.py                 # batch sizes 128 and 512
    python benchmarks/bench_training.py --batch-sizes 128 512 --repeats 30

Then the regulariser's gradient with exact and with stochastic (SLQ) entropies
at batch size: their cosine over keys and their cost (``--gradient-keys 0`` skips it).

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
from flax import nnx  # noqa: E402
from provenance import stamped  # noqa: E402  (benchmarks/ is on the path when run as a script)

import jaxdse  # noqa: E402
from jaxdse import zoo  # noqa: E402
from jaxdse.monitor import training  # noqa: E402

HERE = Path(__file__).resolve().parent


def machine():
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "flax", "optax", "numpy")}
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax device {jax.devices()[0].platform}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )


def example_cnn(width, depth, features, conv_std):
    """``(apply, params)``: the example CNN as a function of its parameter pytree."""
    graphdef, params = nnx.split(zoo.CNN(width=width, depth=depth, features=features, conv_std=conv_std, rngs=0))
    return (lambda p, x: nnx.merge(graphdef, p)(x)), params


def bench(batch, repeats, width, depth, features, conv_std):
    apply, params = example_cnn(width, depth, features, conv_std)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, 8, 8, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(10, size=batch).astype(np.int32))
    args = (params, opt_state, x, y)
    compiled, compile_s = {}, {}
    for measure in (False, True):
        step = jax.jit(training.make_train_step(apply=apply, tx=optimizer, monitor=measure))
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
    entropy = float(out[2].dse)
    steady = {m: statistics.median(t) for m, t in times.items()}
    return dict(batch=batch, compile=compile_s, steady=steady, ratio=steady[True] / steady[False], dse=entropy)


def bench_gradient(per_class, keys, repeats, width, depth, features, conv_std):
    """The regulariser's gradient at batch size: exact against stochastic (SLQ) entropies.

    The penalty of ``examples/regularizer.py`` (minus DSMI(Z; Y), subsample
    estimator, 5 comparison subsets, sigma 10, t 1) and a DSE penalty, on a
    class-balanced batch; gradient with respect to the network's parameters.
    The batch: the first ``per_class`` digits of each class. The same key draws
    the same comparison subsets for both solvers, so the only difference is how
    each subset's entropy is computed.
    """
    apply, params = example_cnn(width, depth, features, conv_std)
    from jaxdse.data import load_digits

    images, labels = load_digits()
    rows_of = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]  # a class-balanced batch of digits
    batch = 10 * per_class
    x = jnp.asarray(images[np.concatenate(rows_of)].reshape(batch, 8, 8, 1) / images.max())
    y = jnp.asarray(np.repeat(np.arange(10), per_class).astype(np.int32))
    penalties = {
        "-DSMI(Z; Y)": lambda z, key, solver: (
            -jaxdse.dsmi(z, y, key=key, sigma=10.0, t=1.0, solver=solver, num_classes=10, max_class_size=per_class)
        ),
        "DSE(Z)": lambda z, key, solver: jaxdse.dse(z, sigma=10.0, t=1.0, solver=solver, key=key),
    }
    rows = []
    for name, penalty in penalties.items():
        runs = {}
        for label, solver in (("exact", jaxdse.Exact()), ("SLQ", jaxdse.SLQ())):

            def loss(p, key, solver=solver):
                return penalty(apply(p, x)[1], key, solver)

            f = jax.jit(jax.value_and_grad(loss))
            start = time.perf_counter()
            compiled = f.lower(params, jax.random.key(0)).compile()
            compile_s = time.perf_counter() - start
            outs = [jax.block_until_ready(compiled(params, jax.random.key(k))) for k in range(keys)]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(compiled(params, jax.random.key(0)))
                times.append(time.perf_counter() - start)
            runs[label] = dict(outs=outs, compile=compile_s, steady=statistics.median(times))
        cos, diff = [], []
        for (v_e, g_e), (v_s, g_s) in zip(runs["exact"]["outs"], runs["SLQ"]["outs"]):
            a = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(g_e)])
            b = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(g_s)])
            cos.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
            diff.append(float(v_s - v_e))
        rows.append(
            dict(
                penalty=name,
                batch=batch,
                value=float(np.mean([o[0] for o in runs["exact"]["outs"]])),
                cos_mean=float(np.mean(cos)),
                cos_min=float(np.min(cos)),
                diff=float(np.mean(np.abs(diff))),
                steady={k: r["steady"] for k, r in runs.items()},
                compile={k: r["compile"] for k, r in runs.items()},
            )
        )
    return rows


def gradient_lines(rows, keys):
    lines = [
        "## The regulariser's gradient: exact against stochastic entropies at batch size",
        "",
        "Gradient with respect to the CNN's parameters of the penalty of `examples/regularizer.py` (minus DSMI(Z; Y),",
        "subsample estimator, 5 comparison subsets, sigma 10, t 1, a class-balanced batch of digits) and of a DSE penalty, with",
        "`jaxdse.Exact()` and with `jaxdse.SLQ()` (default settings); the same key gives both solvers the same comparison",
        f"subsets. Cosine between the two gradients and |value difference| over {keys} keys; time of one jitted",
        "value-and-grad (median, compile apart).",
        "",
        "| penalty | batch | value (exact) | cosine mean | cosine min | mean abs value difference | exact (ms) | SLQ (ms) |"
        " compile exact / SLQ (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['penalty']} | {r['batch']} | {r['value']:.3f} | {r['cos_mean']:.4f} | {r['cos_min']:.4f} | "
            f"{r['diff']:.2e} | {1e3 * r['steady']['exact']:.1f} | {1e3 * r['steady']['SLQ']:.1f} | "
            f"{r['compile']['exact']:.1f} / {r['compile']['SLQ']:.1f} |"
        )
    lines += [
        "",
        "At batch size the exact eigenvalues cost little, so the regulariser uses them; the stochastic solver is for",
        "batches or probe sets too large for a dense eigendecomposition. The table says how far its gradient can be",
        "trusted in the regulariser's setting.",
        "",
    ]
    return lines


def write(rows, command, width, depth, features, conv_std, extra=()):
    lines = [
        "## Measuring during training: train step with and without DSE",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        f"The example CNN (`jaxdse.zoo.CNN`, width {width}, depth {depth}, {features} penultimate features, 8x8x1",
        f"inputs, conv kernels ~ N(0, {conv_std:g}^2) so that the batch's features are spread as during training:",
        'DSE column), one jitted Adam step from `jaxdse.monitor.training.make_train_step`; "with DSE" also computes DSE (sigma 10, t 1,',
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
        *extra,
    ]
    (HERE / "results_training.md").write_text(stamped("\n".join(lines)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--gradient-keys", type=int, default=10, help="keys for the exact-against-SLQ gradient table (0: skip)"
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument(
        "--conv-std",
        type=float,
        default=1.0,
        help="conv kernels ~ N(0, std^2), so that the features are spread (DSE of a few bits) as during training",
    )
    args = parser.parse_args(argv)
    command = ("python benchmarks/bench_training.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    print(machine())
    print(
        f"{'batch':>6} {'step ms':>9} {'+DSE ms':>9} {'ratio':>7} {'compile s':>10} {'+DSE compile s':>15} {'DSE bits':>9}"
    )
    rows = []
    for b in args.batch_sizes:
        r = bench(b, args.repeats, args.width, args.depth, args.features, args.conv_std)
        rows.append(r)
        print(
            f"{b:>6} {1e3 * r['steady'][False]:>9.2f} {1e3 * r['steady'][True]:>9.2f} {r['ratio']:>6.1f}x "
            f"{r['compile'][False]:>10.2f} {r['compile'][True]:>15.2f} {r['dse']:>9.2f}"
        )
    extra = []
    if args.gradient_keys:
        grad_rows = bench_gradient(
            10, args.gradient_keys, args.repeats, args.width, args.depth, args.features, args.conv_std
        )
        for r in grad_rows:
            print(
                f"{r['penalty']}: cosine {r['cos_mean']:.4f} (min {r['cos_min']:.4f}), |dvalue| {r['diff']:.2e}, "
                f"exact {1e3 * r['steady']['exact']:.1f} ms, SLQ {1e3 * r['steady']['SLQ']:.1f} ms"
            )
        extra = gradient_lines(grad_rows, args.gradient_keys)
    write(rows, command, args.width, args.depth, args.features, args.conv_std, extra)
    print(f"wrote {HERE / 'results_training.md'}")


if __name__ == "__main__":
    main()

"""DSE and DSMI of a CNN's penultimate layer during training, with real and with shuffled labels.

The paper (penultimate layer, test split, sigma 10, t 1): DSE(Z) increases
during training; DSMI(Z; Y) increases with real labels but stays flat when the
network memorises shuffled labels; DSMI(Z; X), with X the clustered inputs, is
dataset-dependent.

Here: the :class:`jaxdse.zoo.CNN` (Flax NNX) trained with Adam on a subset of
the digits' train split, under real labels and under a fixed random
permutation of them (which it memorises). Every epoch, on the held-out split
(with its true labels): accuracy, DSE(Z), DSMI(Z; Y) and DSMI(Z; X), computed
inside the jitted evaluation step (:func:`jaxdse.monitor.training.make_evaluator`).
The seeds are trained side by side: the models are one stacked population, and
the epoch and the evaluation are ``nnx.vmap``-ped over it.

    python examples/training_dynamics.py --out outputs/training_dynamics
"""

from __future__ import annotations

import functools

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxdse import zoo
from jaxdse.monitor import training

METRICS = ("train_accuracy", "test_accuracy", "dse", "dsmi_y", "dsmi_x")


def make_functions(y_tr, y_te, clusters, *, lr, batch_size):
    """The optimizer and the population's jitted, vmapped epoch and evaluations.

    Compiled once, and shared by both conditions.
    """
    tx = optax.adam(lr)  # one transformation: part of the optimizers' static structure, so the epoch compiles once
    traces = []
    epoch = nnx.jit(nnx.vmap(functools.partial(zoo.train_epoch, batch_size=batch_size), in_axes=(0, 0, None, None, 0)))
    evaluate = training.make_evaluator(y_te, clusters, jit=False)
    evaluate = nnx.jit(nnx.vmap(_common.counted(evaluate, traces), in_axes=(0, None, None, None, 0)))
    train_accuracy = nnx.jit(
        nnx.vmap(training.make_evaluator(y_tr, None, measure=False, jit=False), in_axes=(0, None, None, None, None))
    )
    return tx, epoch, evaluate, train_accuracy, traces


def run_condition(fns, x_tr, y_tr, x_te, y_te, clusters, *, seeds, epochs, width, features, key, bar):
    """Train ``len(seeds)`` networks side by side; return ``{metric: [epochs + 1, seeds]}``."""
    tx, epoch, evaluate, train_accuracy, _ = fns

    @nnx.vmap
    def population(key):
        model = zoo.CNN(x_tr.shape[1:], width=width, features=features, rngs=key)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    models, optimizers = population(jnp.stack([jax.random.key(s) for s in seeds]))
    x_tr, y_tr, x_te, y_te, clusters = map(jnp.asarray, (x_tr, y_tr, x_te, y_te, clusters))
    history = {m: [] for m in METRICS}
    for e in range(epochs + 1):
        key, k_train, k_eval = jax.random.split(key, 3)
        if e > 0:
            epoch(models, optimizers, x_tr, y_tr, jax.random.split(k_train, len(seeds)))
        m = evaluate(models, x_te, y_te, clusters, jax.random.split(k_eval, len(seeds)))
        tr = train_accuracy(models, x_tr, y_tr, None, k_eval)
        for name, value in zip(METRICS, (tr.accuracy, m.accuracy, m.dse, m.dsmi_y, m.dsmi_x)):
            history[name].append(np.asarray(value))
        bar.update(1)
        bar.set_postfix(train=f"{float(tr.accuracy.mean()):.2f}", dsmi_y=f"{float(m.dsmi_y.mean()):.2f}")
    return {name: np.stack(v) for name, v in history.items()}


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], training=True)
    p.add_argument("--train-size", type=int, default=None, help="training images used (default 600; quick 120)")
    args = p.parse_args(argv)
    quick = args.quick
    epochs = args.epochs or (3 if quick else 60)
    train_size = args.train_size or (120 if quick else 600)
    seeds = [args.seed + i for i in range(2 if quick else 3)]
    width, features = (8, 32) if quick else (32, 256)
    lr, batch_size = 3e-3, 32

    images, labels, data_name = _common.load_images(args.data)
    (x_tr, y_tr), (x_te, y_te) = zoo.train_test_split(images, labels, key=jax.random.key(args.seed))
    x_tr, y_tr = x_tr[:train_size], y_tr[:train_size]
    if quick:
        x_te, y_te = x_te[:80], y_te[:80]
    num_clusters = int(min(10, len(np.unique(labels))))
    clusters = zoo.cluster_inputs(x_te, num_clusters)
    y_shuffled = np.random.default_rng(args.seed).permutation(y_tr)

    fns = make_functions(y_tr, y_te, clusters, lr=lr, batch_size=batch_size)
    runs = {}
    bar = _common.progress(2 * (epochs + 1), "epochs (real, then shuffled labels)", disable=args.no_progress)
    for condition, y_train in (("real", y_tr), ("shuffled", y_shuffled)):
        runs[condition] = run_condition(
            fns,
            x_tr,
            y_train,
            x_te,
            y_te,
            clusters,
            seeds=seeds,
            epochs=epochs,
            width=width,
            features=features,
            key=jax.random.key(args.seed + 1),
            bar=bar,
        )
    bar.close()
    compiles = len(fns[4])

    def change(condition, metric):
        v = runs[condition][metric].mean(1)
        return float(v[-1] - v[0])

    rise_real = change("real", "dsmi_y")
    rise_shuffled = change("shuffled", "dsmi_y")
    spread_real = float(runs["real"]["dsmi_y"][-1].std())
    claims = {
        "dsmi_y_change_real_bits": rise_real,
        "dsmi_y_change_shuffled_bits": rise_shuffled,
        "dsmi_y_max_shuffled_bits": float(runs["shuffled"]["dsmi_y"].mean(1).max()),
        "dse_change_real_bits": change("real", "dse"),
        "dse_change_shuffled_bits": change("shuffled", "dse"),
        "dsmi_x_change_real_bits": change("real", "dsmi_x"),
        "dsmi_x_change_shuffled_bits": change("shuffled", "dsmi_x"),
        "final_train_accuracy_shuffled": float(runs["shuffled"]["train_accuracy"][-1].mean()),
        "final_test_accuracy_real": float(runs["real"]["test_accuracy"][-1].mean()),
        # The paper's claims, with the criteria used here:
        # rose: the mean over seeds gained more than 0.1 bit and more than twice the final spread;
        "dsmi_y_rose_under_real_labels": bool(rise_real > max(0.1, 2 * spread_real)),
        # flat: the shuffled-label run gained less than a fifth of the real-label gain;
        "dsmi_y_flat_under_shuffled_labels": bool(abs(rise_shuffled) < 0.2 * max(rise_real, 1e-9)),
        # memorised: at least 90% training accuracy on the shuffled labels;
        "network_memorised_shuffled_labels": bool(runs["shuffled"]["train_accuracy"][-1].mean() > 0.9),
        "dse_increased_real": bool(change("real", "dse") > 0),
    }

    plt = _common.pyplot()
    titles = {
        "train_accuracy": "train accuracy (labels trained on)",
        "test_accuracy": "test accuracy (true labels)",
        "dse": "DSE(Z)",
        "dsmi_y": "DSMI(Z; Y)",
        "dsmi_x": "DSMI(Z; X), X = input clusters",
    }
    fig, axes = plt.subplots(1, 5, figsize=(14, 2.7))
    x_axis = np.arange(epochs + 1)
    for condition, color in (("real", "tab:blue"), ("shuffled", "tab:red")):
        for ax, metric in zip(axes, METRICS):
            v = runs[condition][metric]
            m, sd = v.mean(1), v.std(1)
            ax.plot(x_axis, m, color=color, lw=1.2, label=f"{condition} labels")
            ax.fill_between(x_axis, m - sd, m + sd, color=color, alpha=0.2)
    for ax, metric in zip(axes, METRICS):
        ax.set_title(titles[metric])
        ax.set_xlabel("epoch")
    axes[2].set_ylabel("bits")
    axes[0].legend()
    fig.suptitle(
        f"Penultimate layer on the held-out split, {len(seeds)} seeds (mean and spread), sigma 10, t 1", y=1.03
    )
    payload = {
        "settings": dict(
            data=data_name,
            train_size=len(x_tr),
            test_size=len(x_te),
            epochs=epochs,
            seeds=seeds,
            width=width,
            features=features,
            learning_rate=lr,
            batch_size=batch_size,
            sigma=10.0,
            t=1.0,
            input_clusters=num_clusters,
            framework="flax.nnx + optax",
            quick=quick,
        ),
        "epoch": x_axis.tolist(),
        "runs": {c: {m: v.tolist() for m, v in r.items()} for c, r in runs.items()},  # [epoch, seed]
        "evaluator_compilations": compiles,
        "claims": claims,
    }
    png, path = _common.save_outputs(fig, args.out, "training_dynamics", payload)
    print(f"wrote {png} and {path}")
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in claims.items()})


if __name__ == "__main__":
    main()

"""DSE-guided initialisation: initial DSE of many candidate networks, and how they then train.

The paper: with conv weights ~ N(0, std), a small std starts at DSE about 0 and
a large one at about log2 n; the low-DSE start converged faster and ended more
accurate (CIFAR-10 about 93.8% vs 91.0%).

Here: the :class:`jaxdse.zoo.CNN`'s convolution kernels are redrawn from
N(0, std^2) for a grid of std values and several seeds (:func:`set_conv_std`
under ``nnx.vmap``; every other parameter is the same for all candidates). The
initial DSE(Z) of the penultimate layer on the held-out split is computed for
every candidate in one vmapped call, the lowest-DSE candidate is picked, and
then all candidates are trained side by side (one vmapped epoch) to relate
initial DSE to convergence speed (mean test accuracy over the epochs, epochs to
reach 90%) and to final test accuracy. The rank correlations are reported
whatever they are.

    python examples/init_search.py --out outputs/init_search
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


def set_conv_std(model, key, std):
    """Redraw every convolution kernel of ``model`` from ``N(0, std^2)``, in place.

    Biases and dense layers are unchanged.
    """
    for conv, k in zip(model.convs, jax.random.split(key, len(model.convs))):
        conv.kernel[...] = std * jax.random.normal(k, conv.kernel.shape, conv.kernel.dtype)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], training=True)
    args = p.parse_args(argv)
    quick = args.quick
    if quick:
        stds, num_seeds, epochs, train_size, test_size = [0.01, 1.0], 2, 2, 200, 80
    else:
        stds, num_seeds, epochs, train_size, test_size = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0], 4, 12, None, None
    epochs = args.epochs or epochs
    width, features, lr, batch_size, target = 16, 64, 1e-3, 32, 0.9

    images, labels, data_name = _common.load_images(args.data)
    (x_tr, y_tr), (x_te, y_te) = zoo.train_test_split(images, labels, key=jax.random.key(args.seed))
    x_tr, y_tr, x_te, y_te = x_tr[:train_size], y_tr[:train_size], x_te[:test_size], y_te[:test_size]
    num_classes = int(labels.max()) + 1

    cand_std = np.repeat(stds, num_seeds).astype(np.float32)
    cand_seed = np.tile(np.arange(num_seeds), len(stds))
    keys = jax.random.split(jax.random.key(args.seed + 1), len(cand_std))
    tx = optax.adam(lr)

    @nnx.vmap
    def candidates(key, std):
        # Every candidate: the same architecture and initialisation, conv kernels ~ N(0, std^2) with its own key.
        model = zoo.CNN(x_tr.shape[1:], width=width, features=features, num_classes=num_classes, rngs=args.seed)
        set_conv_std(model, key, std)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    models, optimizers = candidates(keys, jnp.asarray(cand_std))

    x_tr_j, y_tr_j, x_te_j, y_te_j = map(jnp.asarray, (x_tr, y_tr, x_te, y_te))
    measure = nnx.jit(nnx.vmap(training.make_evaluator(y_te, None, jit=False), in_axes=(0, None, None, None, 0)))
    eval_keys = jax.random.split(jax.random.key(args.seed + 2), len(cand_std))
    with _common.Timer() as t_init:
        initial = jax.block_until_ready(measure(models, x_te_j, y_te_j, None, eval_keys))
    initial_dse = np.asarray(initial.dse)
    best = int(np.argmin(initial_dse))

    epoch = nnx.jit(nnx.vmap(functools.partial(zoo.train_epoch, batch_size=batch_size), in_axes=(0, 0, None, None, 0)))
    accuracy = nnx.jit(
        nnx.vmap(training.make_evaluator(y_te, None, measure=False, jit=False), in_axes=(0, None, None, None, None))
    )
    curves = [np.asarray(initial.accuracy)]
    bar = _common.progress(epochs, f"training {len(cand_std)} candidates side by side", disable=args.no_progress)
    key = jax.random.key(args.seed + 3)
    for _ in range(epochs):
        key, k = jax.random.split(key)
        epoch(models, optimizers, x_tr_j, y_tr_j, jax.random.split(k, len(cand_std)))
        curves.append(np.asarray(accuracy(models, x_te_j, y_te_j, None, k).accuracy))
        bar.update(1)
        bar.set_postfix(best=f"{curves[-1][best]:.3f}", mean=f"{curves[-1].mean():.3f}")
    bar.close()
    curves = np.stack(curves, 1)  # [candidate, epoch]
    final = curves[:, -1]
    mean_curve = curves[:, 1:].mean(1)  # area under the learning curve: convergence speed
    reached = curves >= target
    epochs_to_target = np.where(reached.any(1), reached.argmax(1), np.nan)

    correlations = {
        "spearman_initial_dse_vs_final_accuracy": _common.spearman(initial_dse, final),
        "spearman_initial_dse_vs_mean_accuracy_over_training": _common.spearman(initial_dse, mean_curve),
        "spearman_initial_dse_vs_epochs_to_90pct": _common.spearman(initial_dse, epochs_to_target),
        "pearson_initial_dse_vs_final_accuracy": _common.pearson(initial_dse, final),
    }
    per_std = {
        f"{s:g}": dict(
            initial_dse_mean=float(initial_dse[cand_std == s].mean()),
            final_accuracy_mean=float(final[cand_std == s].mean()),
            mean_accuracy_over_training=float(mean_curve[cand_std == s].mean()),
        )
        for s in stds
    }
    low, high = cand_std == min(stds), cand_std == max(stds)
    claims = {
        "lowest_dse_candidate": dict(
            std=float(cand_std[best]),
            seed=int(cand_seed[best]),
            initial_dse=float(initial_dse[best]),
            final_accuracy=float(final[best]),
            rank_of_final_accuracy=int((final > final[best]).sum()) + 1,
        ),
        "smallest_std_starts_near_zero_dse": bool(initial_dse[low].mean() < 0.5),
        "largest_std_starts_near_log2_n": bool(initial_dse[high].mean() > 0.8 * np.log2(len(x_te))),
        "low_dse_start_converged_faster": bool(mean_curve[low].mean() > mean_curve[high].mean()),
        "low_dse_start_ended_more_accurate": bool(final[low].mean() > final[high].mean()),
        "correlations": correlations,
        "note": "a negative correlation means lower initial DSE goes with higher accuracy (the paper's finding)",
    }

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    cmap = plt.cm.coolwarm
    norm = plt.matplotlib.colors.LogNorm(min(stds), max(stds))
    sc = axes[0].scatter(initial_dse, final, c=cand_std, cmap=cmap, norm=norm, s=18)
    axes[0].scatter(initial_dse[best], final[best], s=80, facecolors="none", edgecolors="k", label="lowest initial DSE")
    axes[0].set_xlabel("initial DSE(Z) (bits)")
    axes[0].set_ylabel(f"test accuracy after {epochs} epochs")
    axes[0].set_title(f"Spearman {correlations['spearman_initial_dse_vs_final_accuracy']:.2f}")
    axes[0].legend(loc="lower left")
    axes[1].scatter(initial_dse, mean_curve, c=cand_std, cmap=cmap, norm=norm, s=18)
    axes[1].set_xlabel("initial DSE(Z) (bits)")
    axes[1].set_ylabel("mean test accuracy over training")
    axes[1].set_title(f"Spearman {correlations['spearman_initial_dse_vs_mean_accuracy_over_training']:.2f}")
    for c in range(len(cand_std)):
        axes[2].plot(np.arange(epochs + 1), curves[c], color=cmap(norm(cand_std[c])), lw=0.8, alpha=0.7)
    axes[2].plot(np.arange(epochs + 1), curves[best], color="k", lw=1.5, label="lowest initial DSE")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("test accuracy")
    axes[2].legend(loc="lower right")
    fig.colorbar(sc, ax=axes[2], label="conv weight std")
    payload = {
        "settings": dict(
            data=data_name,
            train_size=len(x_tr),
            test_size=len(x_te),
            stds=stds,
            seeds=num_seeds,
            epochs=epochs,
            width=width,
            features=features,
            learning_rate=lr,
            batch_size=batch_size,
            sigma=10.0,
            t=1.0,
            quick=quick,
        ),
        "candidates": dict(
            std=cand_std,
            seed=cand_seed,
            initial_dse=initial_dse,
            initial_dsmi_y=np.asarray(initial.dsmi_y),
            final_accuracy=final,
            mean_accuracy_over_training=mean_curve,
            epochs_to_90pct=epochs_to_target,
            test_accuracy_curves=curves,
        ),
        "seconds_initial_dse_all_candidates": t_init.seconds,
        "per_std": per_std,
        "claims": claims,
    }
    png, path = _common.save_outputs(fig, args.out, "init_search", payload)
    print(f"wrote {png} and {path}")
    print("per std:", {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in per_std.items()})
    print("correlations:", {k: round(v, 3) for k, v in correlations.items()})


if __name__ == "__main__":
    main()

"""A zoo of small CNNs: does DSMI(Z; Y), DSE(Z) or CSE(Z) of the penultimate layer track test accuracy?

The paper, across 962 pretrained ImageNet models: DSMI(Z; Y) correlates with
top-1 accuracy (Pearson 0.216, Spearman 0.144); DSE(Z) does not (r = 0.002).

Here: at least 30 :class:`jaxdse.nn.CNN` models trained on the digits with
randomly drawn width, depth, number of epochs, seed and training-label noise
(a fraction of the training labels replaced by random ones). For each model,
on the held-out split: test accuracy, DSE(Z), DSMI(Z; Y) (sigma 10, t 1) and
the classic Shannon entropy CSE(Z) (2 bins per feature). All models share the
penultimate width, so one compiled measurement serves the whole zoo; each
architecture's training epoch compiles once.

    python examples/model_zoo.py --out outputs/model_zoo
"""

from __future__ import annotations

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxdse
from jaxdse import nn
from jaxdse.baselines import cse

PAPER = {"dsmi_y": {"pearson": 0.216, "spearman": 0.144}, "dse": {"pearson": 0.002, "spearman": None}}


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_data_argument(p)
    p.add_argument("--models", type=int, default=None, help="number of models (default 32; quick 4)")
    args = p.parse_args(argv)
    quick = args.quick
    num_models = args.models or (4 if quick else 32)
    widths, depths = ([8], [1]) if quick else ([4, 8, 16, 32], [1, 2, 3])
    epoch_choices = [1, 2] if quick else [1, 2, 4, 8, 16]
    noises = [0.0, 0.5] if quick else [0.0, 0.2, 0.5, 0.8]
    features, lr, batch_size = 64, 1e-3, 32

    images, labels, data_name = _common.load_images(args.data)
    (x_tr, y_tr), (x_te, y_te) = nn.train_test_split(images, labels, key=jax.random.key(args.seed))
    if quick:
        x_tr, y_tr, x_te, y_te = x_tr[:200], y_tr[:200], x_te[:80], y_te[:80]
    num_classes = int(labels.max()) + 1
    rng = np.random.default_rng(args.seed)
    configs = [
        dict(
            width=int(rng.choice(widths)), depth=int(rng.choice(depths)), epochs=int(rng.choice(epoch_choices)),
            seed=int(rng.integers(1 << 16)), label_noise=float(rng.choice(noises)),
        )
        for _ in range(num_models)
    ]

    n_cls, max_cls = num_classes, int(np.bincount(y_te).max())

    @jax.jit
    def measure(z, y, key):
        return (
            jaxdse.dse(z, sigma=10.0, t=1.0),
            jaxdse.dsmi(z, y, key=key, sigma=10.0, t=1.0, num_classes=n_cls, max_class_size=max_cls),
            cse(z),
        )

    optimizer = optax.adam(lr)
    compiled = {}
    x_tr_j, x_te_j, y_te_j = jnp.asarray(x_tr), jnp.asarray(x_te), jnp.asarray(y_te)
    rows = []
    bar = _common.progress(len(configs), f"training {len(configs)} models", disable=args.no_progress)
    for i, c in enumerate(configs):
        arch = (c["width"], c["depth"])
        if arch not in compiled:
            model, _ = nn.make_model(
                jax.random.key(0), width=c["width"], depth=c["depth"], features=features, num_classes=num_classes,
                image_shape=x_tr.shape[1:],
            )
            compiled[arch] = (model, nn.make_train_epoch(model, optimizer, batch_size=batch_size), jax.jit(model.apply))
        model, epoch, forward = compiled[arch]
        key = jax.random.key(c["seed"])
        key, init_key = jax.random.split(key)
        _, params = nn.make_model(
            init_key, width=c["width"], depth=c["depth"], features=features, num_classes=num_classes,
            image_shape=x_tr.shape[1:],
        )
        noisy = np.random.default_rng(c["seed"]).random(len(y_tr)) < c["label_noise"]
        y_train = np.where(noisy, np.random.default_rng(c["seed"] + 1).integers(num_classes, size=len(y_tr)), y_tr)
        y_train = jnp.asarray(y_train.astype(np.int32))
        opt_state = optimizer.init(params)
        for _ in range(c["epochs"]):
            key, k = jax.random.split(key)
            params, opt_state, _ = epoch(params, opt_state, x_tr_j, y_train, k)
        logits, z = forward({"params": params}, x_te_j)
        accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_te_j))
        h, mi, c_entropy = (float(v) for v in measure(z, y_te_j, jax.random.key(i)))
        rows.append(dict(c, test_accuracy=accuracy, dse=h, dsmi_y=mi, cse=c_entropy))
        bar.update(1)
        bar.set_postfix(acc=f"{accuracy:.2f}", dsmi=f"{mi:.2f}")
    bar.close()

    acc = np.array([r["test_accuracy"] for r in rows])
    correlations = {
        m: {
            "pearson": _common.pearson(acc, [r[m] for r in rows]),
            "spearman": _common.spearman(acc, [r[m] for r in rows]),
        }
        for m in ("dsmi_y", "dse", "cse")
    }
    # The same within the models trained on clean labels only (label noise drives much of the spread).
    clean = [r for r in rows if r["label_noise"] == 0.0]
    clean_correlations = {
        m: {
            "pearson": _common.pearson([r["test_accuracy"] for r in clean], [r[m] for r in clean]),
            "spearman": _common.spearman([r["test_accuracy"] for r in clean], [r[m] for r in clean]),
        }
        for m in ("dsmi_y", "dse", "cse")
    }
    dsmi_r, dse_r = correlations["dsmi_y"]["spearman"], correlations["dse"]["spearman"]
    claims = {
        "dsmi_y_correlates_positively_with_accuracy": bool(correlations["dsmi_y"]["pearson"] > 0 and dsmi_r > 0),
        "dsmi_y_correlates_more_than_dse": bool(abs(dsmi_r) > abs(dse_r)),
        "correlations": correlations,
        "correlations_clean_labels_only": dict(clean_correlations, models=len(clean)),
        "paper_imagenet": PAPER,
    }

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0), sharey=True)
    noise_values = np.array([r["label_noise"] for r in rows])
    for ax, m, title in zip(axes, ("dsmi_y", "dse", "cse"), ("DSMI(Z; Y)", "DSE(Z)", "CSE(Z)")):
        sc = ax.scatter([r[m] for r in rows], acc, c=noise_values, cmap="viridis", vmin=0, vmax=max(noises), s=16)
        cr = correlations[m]
        ax.set_title(f"{title}: Pearson {cr['pearson']:.2f}, Spearman {cr['spearman']:.2f}")
        ax.set_xlabel(f"{title} (bits)")
    axes[0].set_ylabel("test accuracy")
    fig.colorbar(sc, ax=axes[2], label="training label noise")
    fig.suptitle(
        f"{len(rows)} small CNNs on digits (paper, 962 ImageNet models: DSMI Pearson 0.216 / Spearman 0.144, DSE 0.002)",
        y=1.03,
    )
    png = _common.save_figure(fig, args.out, "model_zoo.png")
    path = _common.save_json(
        args.out,
        "model_zoo.json",
        {
            "settings": dict(
                data=data_name, models=len(rows), train_size=len(x_tr), test_size=len(x_te), widths=widths,
                depths=depths, epochs=epoch_choices, label_noise=noises, features=features, learning_rate=lr,
                batch_size=batch_size, sigma=10.0, t=1.0, cse_bins_per_feature=2, quick=quick,
            ),
            "models": rows,
            "measure_compilations": measure._cache_size(),
            "claims": claims,
        },
    )
    print(f"wrote {png} and {path}")
    for m, cr in correlations.items():
        print(f"{m}: Pearson {cr['pearson']:.3f}, Spearman {cr['spearman']:.3f}")


if __name__ == "__main__":
    main()

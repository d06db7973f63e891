"""A zoo of small CNNs: which measure of the penultimate layer predicts test accuracy and the generalisation gap?

The paper, across 962 pretrained ImageNet models: DSMI(Z; Y) correlates with
top-1 accuracy (Pearson 0.216, Spearman 0.144); DSE(Z) does not (r = 0.002).

Here: over a hundred :class:`jaxdse.zoo.CNN` models (Flax NNX) trained on the
digits, varied in width, depth, training length, training-label noise, weight
decay and initial scale. Each architecture trains as one population: its
members are one stacked model (``nnx.vmap`` of the constructor), and one
jitted, ``nnx.vmap``-ped scan of an epoch trains a small group of members side by side; each
epoch runs only the members still training, so the work follows each member's
own length (1 to 32 epochs) and each architecture compiles once. Every member is then measured on the held-out digits by
one compiled call of :func:`jaxdse.monitor.make_representation_evaluator`:
DSE, DSMI(Z; Y), RankMe, participation ratio, alpha-ReQ, matrix-based Renyi
entropy and mutual information, kNN and ridge probes (plus CSE). For each
measure: Spearman rank correlations with test accuracy and with the
generalisation gap (training accuracy on the labels trained on, minus test
accuracy), with percentile bootstrap 95% intervals over models.

    python examples/model_zoo.py --out examples/figures
"""

from __future__ import annotations

import functools
import time

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import stats

from jaxdse import zoo
from jaxdse.baselines import cse
from jaxdse.monitor import RepresentationMetrics, make_representation_evaluator, training

PAPER = {"dsmi": {"pearson": 0.216, "spearman": 0.144}, "dse": {"pearson": 0.002, "spearman": None}}
MEASURES = RepresentationMetrics._fields + ("cse",)
LABELS = {
    "dse": "DSE(Z)",
    "dsmi": "DSMI(Z; Y)",
    "rankme": "RankMe",
    "participation_ratio": "participation ratio",
    "alpha_req": "alpha-ReQ",
    "renyi_entropy": "Renyi entropy S2(Z)",
    "renyi_mi": "Renyi MI I2(Z; Y)",
    "knn_accuracy": "kNN probe (k=5)",
    "ridge_accuracy": "ridge probe",
    "cse": "CSE(Z)",
}


def draw_members(rng, num, *, epochs, noises, decays, scales):
    """Random hyperparameters of ``num`` members of one architecture."""
    return dict(
        epochs=rng.choice(epochs, num),
        label_noise=rng.choice(noises, num),
        weight_decay=rng.choice(decays, num),
        init_scale=rng.choice(scales, num),
        seed=rng.integers(1 << 30, size=num),
    )


def make_population_trainer(*, batch_size, steps_per_call):
    """``train(models, optimizers, x, labels, steps, keys, start)``: steps ``start`` to
    ``start + steps_per_call - 1``, in place.

    ``nnx.vmap``-ped over members (all but ``x`` and ``start``) and ``nnx.jit``-ted.
    Each member takes steps of its own optimizer (Adam-W) on minibatches drawn
    with replacement from its own (noisy) labels; step ``i`` changes a member
    only while ``i < steps``.
    """
    step = training.make_train_step()

    def train_one(model, optimizer, x, labels, steps, key, start):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def body(carry, i):
            idx = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, x.shape[0])
            old = jax.tree.map(jnp.copy, nnx.state(carry))
            step(*carry, x[idx], labels[idx])
            keep = i < steps
            nnx.update(carry, jax.tree.map(lambda new, old: jnp.where(keep, new, old), nnx.state(carry), old))
            return carry

        body((model, optimizer), start + jnp.arange(steps_per_call))

    return nnx.jit(nnx.vmap(train_one, in_axes=(0, 0, None, 0, 0, 0, None)))


_take = jax.jit(lambda tree, sel: jax.tree.map(lambda a: a[sel], tree))
_put = jax.jit(lambda tree, sel, new: jax.tree.map(lambda a, b: a.at[sel].set(b), tree, new))


def train_population(train, population, x, labels, steps, keys, *, group, steps_per_call):
    """Train every member its own number of ``steps``, ``group`` members per call of ``train``; in place.

    Members draw their training lengths from 1 to 32 epochs, so a population
    trained side by side to the longest length would spend about two thirds of
    its work on members that have stopped. Here each call runs one block of
    ``steps_per_call`` steps for ``group`` members that are still training
    (padded with finished members given 0 steps, which leaves them unchanged), so
    the work follows the members' own lengths while ``train`` compiles once.
    ``population``: the stacked ``(models, optimizers)``.
    """
    steps = np.asarray(steps)
    members = len(steps)
    group = min(group, members)
    labels, keys = jnp.asarray(labels), jnp.asarray(keys)
    graphdef, state = nnx.split(population)
    for start in range(0, int(steps.max()), steps_per_call):
        active = np.flatnonzero(steps > start)
        for first in range(0, len(active), group):
            chosen = active[first : first + group]
            sel = np.concatenate([chosen, np.setdiff1d(np.arange(members), chosen)[: group - len(chosen)]])
            own = np.where(np.arange(group) < len(chosen), steps[sel], 0)
            part = nnx.merge(graphdef, _take(state, sel))
            train(*part, x, labels[sel], jnp.asarray(own), keys[sel], start)
            state = _put(state, sel, nnx.state(part))
    nnx.update(population, state)
    return population


def init_population(make_model, tx, members):
    """Stacked ``(models, optimizers)``: ``make_model(rngs=...)`` with every kernel times ``init_scale``, and
    each member's own weight decay.

    ``tx``: an ``optax.inject_hyperparams`` transformation with a ``weight_decay``
    hyperparameter, set per member.
    """

    @nnx.vmap
    def init_one(key, scale, decay):
        model = make_model(rngs=nnx.Rngs(key))
        for path, variable in nnx.iter_graph(model):
            if isinstance(variable, nnx.Param) and path[-1] == "kernel":
                variable[...] = variable[...] * scale
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        optimizer.opt_state.hyperparams["weight_decay"][...] = decay
        return model, optimizer

    return init_one(
        jnp.stack([jax.random.key(int(s)) for s in members["seed"]]),
        jnp.asarray(members["init_scale"], jnp.float32),
        jnp.asarray(members["weight_decay"], jnp.float32),
    )


def noisy_labels(y, noise, num_classes, seed):
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < noise
    return np.where(flip, rng.integers(num_classes, size=len(y)), y).astype(np.int32)


def bootstrap_spearman(values, target, *, resamples, rng):
    """Spearman of each row of ``values`` [m, n] with ``target`` [n], and percentile 95% bootstrap intervals."""
    n = len(target)
    idx = rng.integers(n, size=(resamples, n))
    t_ranks = stats.rankdata(target[idx], axis=1)
    out = {}
    for name, v in values.items():
        point = stats.spearmanr(v, target).statistic
        v_ranks = stats.rankdata(v[idx], axis=1)
        rho = _row_pearson(v_ranks, t_ranks)
        out[name] = dict(
            spearman=float(point),
            low=float(np.nanpercentile(rho, 2.5)),
            high=float(np.nanpercentile(rho, 97.5)),
            pearson=float(np.corrcoef(v, target)[0, 1]),
        )
    return out, idx


def _row_pearson(a, b):
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def plot(with_accuracy, with_gap, with_accuracy_settled, count, settled_count):
    """The correlation table at a glance: one row per measure, a point and its 95% interval per column."""
    plt = _common.pyplot()
    panels = [
        ("test accuracy,\nall models", with_accuracy, count),
        ("generalisation gap,\nall models", with_gap, count),
    ]
    if with_accuracy_settled:
        panels.append(("test accuracy, clean labels,\nlong training", with_accuracy_settled, settled_count))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.2, 4.2), sharey=True)
    order = list(MEASURES)[::-1]
    for ax, (title, table, n) in zip(np.atleast_1d(axes), panels):
        for j, name in enumerate(order):
            c = table[name]
            colour = "C3" if name in ("dse", "dsmi") else ("C2" if name.endswith("accuracy") else "C0")
            # The percentile interval need not contain the point estimate (few models): draw both as they are.
            ax.plot([c["low"], c["high"]], [j, j], "|-", color=colour, ms=6)
            ax.plot(c["spearman"], j, "o", color=colour, ms=4)
            ax.text(1.02, j, f"{c['spearman']:+.2f}", va="center", fontsize=7, transform=ax.get_yaxis_transform())
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_title(f"Spearman with {title} (n = {n})")
        ax.set_xlabel("rank correlation, 95% bootstrap interval")
    first = np.atleast_1d(axes)[0]
    first.set_yticks(range(len(order)), [LABELS[k] for k in order])
    first.plot([PAPER["dsmi"]["spearman"]], [order.index("dsmi")], "k*", ms=7, label="ImageNet (paper), DSMI")
    first.plot([0.0], [order.index("dse")], "kx", ms=7, label="ImageNet (paper), DSE ~ 0")
    first.legend(loc="lower left", fontsize=6)
    fig.suptitle(f"{count} small CNNs on digits: which measure of the penultimate layer tracks what", y=1.02)
    return fig


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    _common.add_data_argument(p)
    p.add_argument("--members", type=int, default=None, help="models per architecture (default 14; quick 6)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--group", type=int, default=2, help="members trained side by side in one call")
    args = p.parse_args(argv)
    quick = args.quick
    start = time.perf_counter()
    members_per_arch = args.members or (6 if quick else 14)
    archs = [(8, 1)] if quick else [(w, d) for w in (4, 8, 16) for d in (1, 2, 3)]
    epoch_choices = [1, 2] if quick else [1, 2, 4, 8, 16, 32]
    noises = [0.0, 0.5] if quick else [0.0, 0.2, 0.4, 0.6]
    decays = [0.0, 0.1] if quick else [0.0, 0.01, 0.1, 1.0]
    scales = [0.3, 1.0] if quick else [0.1, 0.3, 1.0, 3.0]
    features, lr, batch_size = 64, 3e-3, 64

    images, labels, data_name = _common.load_images(args.data)
    (x_tr, y_tr), (x_te, y_te) = zoo.train_test_split(images, labels, key=jax.random.key(args.seed))
    if quick:
        x_tr, y_tr, x_te, y_te = x_tr[:200], y_tr[:200], x_te[:80], y_te[:80]
    num_classes = int(labels.max()) + 1
    steps_per_epoch = max(len(x_tr) // batch_size, 1)
    image_shape = tuple(x_tr.shape[1:])
    optimizer = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=0.0)
    # One trainer for every architecture: it compiles once per architecture (its models' structure).
    train = make_population_trainer(batch_size=batch_size, steps_per_call=steps_per_epoch)
    forward = nnx.jit(nnx.vmap(lambda model, x: model(x), in_axes=(0, None)))

    evaluate = make_representation_evaluator(
        num_classes=num_classes, max_class_size=int(np.bincount(y_te).max()), sigma=10.0, t=1.0
    )
    # One member at a time, on features already on the host: the evaluation is cheap next to training, and
    # one compiled program serves every architecture's features.
    measure = jax.jit(lambda z, y, zt, yt, key: (evaluate(z, y, zt, yt, key), cse(z)))
    x_tr_j, x_te_j, y_tr_j, y_te_j = map(jnp.asarray, (x_tr, x_te, y_tr, y_te))
    rng = np.random.default_rng(args.seed)
    rows, train_seconds = [], 0.0
    bar = _common.progress(len(archs), f"training {len(archs)} populations", disable=args.no_progress)
    for a, (width, depth) in enumerate(archs):
        make_model = functools.partial(
            zoo.CNN, image_shape, width=width, depth=depth, features=features, num_classes=num_classes
        )
        m = draw_members(rng, members_per_arch, epochs=epoch_choices, noises=noises, decays=decays, scales=scales)
        y_noisy = np.stack([noisy_labels(y_tr, nz, num_classes, s) for nz, s in zip(m["label_noise"], m["seed"])])
        population = init_population(make_model, optimizer, m)
        tick = time.perf_counter()
        keys = jax.random.split(jax.random.key(args.seed + 1000 + a), members_per_arch)
        models, _ = train_population(
            train,
            population,
            x_tr_j,
            y_noisy,
            m["epochs"] * steps_per_epoch,
            keys,
            group=args.group,
            steps_per_call=steps_per_epoch,
        )
        jax.block_until_ready(nnx.state(models))
        train_seconds += time.perf_counter() - tick
        logits_te, z_te = forward(models, x_te_j)
        logits_tr, z_tr = forward(models, x_tr_j)
        z_te, z_tr = np.asarray(z_te), np.asarray(z_tr)
        keys = jax.random.split(jax.random.key(a), members_per_arch)
        per_member = [
            jax.block_until_ready(measure(z_te[i], y_te_j, z_tr[i], y_tr_j, keys[i])) for i in range(members_per_arch)
        ]
        metrics = jax.tree.map(lambda *v: np.stack(v), *[pm[0] for pm in per_member])
        c_entropy = np.array([pm[1] for pm in per_member])
        test_acc = np.asarray(jnp.mean(jnp.argmax(logits_te, -1) == y_te_j, -1))
        pred_tr = np.asarray(jnp.argmax(logits_tr, -1))
        train_acc = (pred_tr == y_noisy).mean(1)
        clean_train_acc = (pred_tr == y_tr[None]).mean(1)
        for i in range(members_per_arch):
            row = dict(
                width=width,
                depth=depth,
                **{k: v[i].item() for k, v in m.items()},
                test_accuracy=float(test_acc[i]),
                train_accuracy=float(train_acc[i]),
                clean_train_accuracy=float(clean_train_acc[i]),
                gap=float(train_acc[i] - test_acc[i]),
                **{name: float(getattr(metrics, name)[i]) for name in RepresentationMetrics._fields},
                cse=float(c_entropy[i]),
            )
            rows.append(row)
        bar.update(1)
        bar.set_postfix(acc=f"{test_acc.mean():.2f}")
    bar.close()

    usable = [r for r in rows if all(np.isfinite(r[k]) for k in MEASURES)]
    acc = np.array([r["test_accuracy"] for r in usable])
    gap = np.array([r["gap"] for r in usable])
    values = {k: np.array([r[k] for r in usable]) for k in MEASURES}
    boot = np.random.default_rng(args.seed + 7)
    with_accuracy, idx = bootstrap_spearman(values, acc, resamples=args.resamples, rng=boot)
    with_gap, _ = bootstrap_spearman(values, gap, resamples=args.resamples, rng=boot)
    # Paired bootstrap of the difference the paper reports: DSMI minus DSE, on the same resamples.
    acc_ranks = stats.rankdata(acc[idx], axis=1)
    diff = _row_pearson(stats.rankdata(values["dsmi"][idx], axis=1), acc_ranks) - _row_pearson(
        stats.rankdata(values["dse"][idx], axis=1), acc_ranks
    )
    dsmi_minus_dse = dict(
        spearman=with_accuracy["dsmi"]["spearman"] - with_accuracy["dse"]["spearman"],
        low=float(np.nanpercentile(diff, 2.5)),
        high=float(np.nanpercentile(diff, 97.5)),
    )
    # A zoo closer to the paper's: clean labels, trained for the longest half of the lengths.
    long = sorted(epoch_choices)[len(epoch_choices) // 2 :]
    settled = [r for r in usable if r["label_noise"] == 0.0 and r["epochs"] in long]
    if len(settled) >= 5:
        s_values = {k: np.array([r[k] for r in settled]) for k in MEASURES}
        with_accuracy_settled, _ = bootstrap_spearman(
            s_values, np.array([r["test_accuracy"] for r in settled]), resamples=args.resamples, rng=boot
        )
    else:
        with_accuracy_settled = {}

    def excludes_zero(c):
        return bool(c["low"] > 0 or c["high"] < 0)

    claims = {
        "dsmi_correlates_positively_with_accuracy": bool(with_accuracy["dsmi"]["low"] > 0),
        "dse_correlation_with_accuracy_excludes_zero": excludes_zero(with_accuracy["dse"]),
        "dsmi_minus_dse_spearman_with_accuracy": dsmi_minus_dse,
        "dsmi_correlates_more_than_dse": bool(dsmi_minus_dse["low"] > 0),
        "best_predictor_of_accuracy": max(MEASURES, key=lambda k: with_accuracy[k]["spearman"]),
        "best_predictor_of_gap": max(MEASURES, key=lambda k: abs(with_gap[k]["spearman"])),
        "paper_imagenet": PAPER,
    }

    fig = plot(with_accuracy, with_gap, with_accuracy_settled, len(usable), len(settled))
    png = _common.save_figure(fig, args.out, "model_zoo.png")
    seconds = time.perf_counter() - start
    path = _common.save_json(
        args.out,
        "model_zoo.json",
        {
            "settings": dict(
                data=data_name,
                models=len(rows),
                architectures=archs,
                members_per_architecture=members_per_arch,
                train_size=len(x_tr),
                test_size=len(x_te),
                epochs=epoch_choices,
                steps_per_epoch=steps_per_epoch,
                label_noise=noises,
                weight_decay=decays,
                init_scale=scales,
                features=features,
                learning_rate=lr,
                optimizer="adamw",
                batch_size=batch_size,
                members_per_call=args.group,
                sigma=10.0,
                t=1.0,
                renyi_alpha=2.0,
                knn_k=5,
                ridge_regularization=1e-3,
                cse_bins_per_feature=2,
                bootstrap_resamples=args.resamples,
                quick=quick,
                gap="training accuracy on the (noisy) labels trained on minus test accuracy",
            ),
            "models": rows,
            "usable_models": len(usable),
            "spearman_with_test_accuracy": with_accuracy,
            "spearman_with_gap": with_gap,
            "spearman_with_test_accuracy_settled": dict(with_accuracy_settled, models=len(settled)),
            "measure_compilations": measure._cache_size(),
            "seconds": dict(total=seconds, training=train_seconds),
            "claims": claims,
        },
    )
    print(f"wrote {png} and {path} ({seconds:.0f} s, training {train_seconds:.0f} s)")
    print(f"{'measure':>22} {'vs accuracy':>24} {'vs gap':>24}")
    for k in MEASURES:
        a, g = with_accuracy[k], with_gap[k]
        print(
            f"{LABELS[k]:>22} {a['spearman']:+.2f} [{a['low']:+.2f}, {a['high']:+.2f}]   "
            f"{g['spearman']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}]"
        )
    print(
        f"DSMI - DSE (accuracy): {dsmi_minus_dse['spearman']:+.2f} "
        f"[{dsmi_minus_dse['low']:+.2f}, {dsmi_minus_dse['high']:+.2f}]"
    )


if __name__ == "__main__":
    main()

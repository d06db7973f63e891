"""``jaxdse demo``: train a small network on the shipped digits and track DSE(Z) and DSMI(Z; Y) per epoch."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from jaxdse.cli.report import UNITS, check_output_folder, fmt
from jaxdse.io._report import Timer, jsonable

DEMO_EPOCHS = 15


def run(args, report):
    """Train the small CNN of :mod:`jaxdse.zoo` on the digits; DSE(Z) and DSMI(Z; Y) per epoch."""
    import jax

    from jaxdse import zoo
    from jaxdse.data import load_digits
    from jaxdse.io import plotting

    plotting.pyplot()  # matplotlib is needed: fail before training, not after
    out = args.out
    check_output_folder(out, "--out")
    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    x, y = load_digits()
    if args.subset is not None and args.subset < len(x):
        idx = np.sort(
            np.asarray(jax.random.choice(jax.random.PRNGKey(args.seed), len(x), (args.subset,), replace=False))
        )
        x, y = x[idx], y[idx]
        report.note(f"using {args.subset} of the 1797 digits (--subset, seed {args.seed})")
    key = jax.random.key(args.seed)
    split_key, fit_key = jax.random.split(key)
    (x_train, y_train), (x_test, y_test) = zoo.train_test_split(zoo.as_images(x), y, key=split_key)
    sigma, t = 10.0, 1.0
    report.data["settings"].update(
        epochs=epochs,
        seed=args.seed,
        sigma=sigma,
        t=t,
        repetitions=5,
        model="CNN (flax.nnx; width 16, depth 2, 64 penultimate features)",
        optimizer="adam 1e-3, batch 64",
        n_train=len(x_train),
        n_test=len(x_test),
    )
    report.data["n"], report.data["d"] = len(x_test), 64
    report.print(
        f"Training a small CNN on {len(x_train)} of the scikit-learn 8x8 digits for {epochs} epoch(s) "
        f"({report.data['device']}); measuring its penultimate layer Z (64 features) on {len(x_test)} test digits."
    )
    report.print(
        f"DSE and DSMI in bits (sigma = {sigma:g}, t = {t:g}, as in the paper); DSE(Z) <= log2 {len(x_test)} = "
        f"{math.log2(len(x_test)):.2f}. Y: class labels; X: clusters of the input images."
    )
    report.print()
    head = ("epoch", "train acc", "test acc", "DSE(Z)", "DSMI(Z; Y)", "DSMI(Z; X)", "s since start")
    widths = [5, 9, 8, 7, 10, 10, 13]
    report.print("  ".join(f"{h:>{w}}" for h, w in zip(head, widths)))
    report.print("  ".join("-" * w for w in widths))

    def show(epoch, row):
        cells = (
            epoch,
            f"{row['train_accuracy']:.3f}",
            f"{row['test_accuracy']:.3f}",
            fmt(row["dse"], 3),
            fmt(row["dsmi_y"], 3),
            fmt(row["dsmi_x"], 3),
            f"{row['seconds']:.1f}",
        )
        report.print("  ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths)))

    with Timer() as timer:
        history = zoo.fit(
            x_train,
            y_train,
            x_test,
            y_test,
            epochs=epochs,
            key=fit_key,
            sigma=sigma,
            t=t,
            callback=show,
            progress="training" if sys.stderr.isatty() else False,
        )
    report.data["timings"]["total_s"] = timer.seconds
    names = {
        "epoch": "epoch",
        "train_accuracy": "train_accuracy",
        "accuracy": "test_accuracy",
        "dse": "dse",
        "dsmi": "dsmi_y",
        "dsmi_x": "dsmi_x",
        "seconds": "seconds",
    }
    curves = {name: [float(v) for v in history[key]] for name, key in names.items()}
    curves["epoch"] = [int(e) for e in curves["epoch"]]
    report.data.update(curves)
    report.data["seconds_are"] = "cumulative: wall time since training started, at the end of each epoch"
    plot_path = os.path.join(out, "demo_curves.png")
    report.value("dse", curves["dse"], "DSE(Z)")
    report.value("dsmi", curves["dsmi"], "DSMI(Z; Y)")
    plotting.save_figure(plotting.demo_figure(curves, n_test=len(x_test), sigma=sigma, t=t), plot_path)
    data_path = os.path.join(out, "demo_history.json")
    with open(data_path, "w") as handle:
        json.dump(jsonable(dict(curves, units=UNITS, settings=report.data["settings"])), handle, indent=2)
    report.data["plot"] = plot_path
    report.data["history"] = data_path
    report.print()
    report.print(
        "Epoch 0 is before training. DSE(Z) and DSMI(Z; Y) grow as the network learns, as in the paper's "
        "training curves (arXiv 2312.04823). The last column is cumulative: seconds since training started."
    )
    report.print(f"curves: {plot_path}; numbers: {data_path}; total {timer.seconds:.1f} s")

"""``jaxdse compare``: DSE/DSMI next to CSE/CSMI, KSG, MINE and the reference package, with timings."""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np

from jaxdse.cli import inputs
from jaxdse.cli.parser import ESTIMATORS
from jaxdse.cli.report import UNITS, UsageError, fmt, table
from jaxdse.cli.solver import solver_options
from jaxdse.io._report import Timer, progress

CSMI_NOTE = (
    "can be below 0: like DSMI it is a difference of two estimates (random subsets minus classes), "
    "and binned entropies of small subsets are noisy"
)


def run(args, report):
    options = solver_options(args)
    x = inputs.read_points(args, report)
    labels = inputs.read_labels(args, x.shape[0], report)
    x, labels = inputs.subsample_rows([x, labels], args.max_n, args.seed, report)
    header = inputs.describe_input(report, x)
    resolved = inputs.record_sigma(report, args.sigma, x)
    report.settings.update(
        t=args.t,
        solver=args.solver,
        alpha=args.alpha,
        estimator=args.estimator,
        repetitions=args.repetitions,
        seed=args.seed,
        bins=args.bins,
        ksg_k=args.ksg_k,
        mine_epochs=args.mine_epochs,
        repeat=args.repeat,
    )
    names = list(dict.fromkeys(args.estimators))
    if "reference" in names and not _has_reference_package():
        names.remove("reference")
        if args.estimators != list(ESTIMATORS):
            raise ImportError("the 'reference' estimator needs the dse-dsmi package: pip install dse-dsmi")
        report.note("dse-dsmi (the authors' package) is not installed: its row is left out")
    jobs = _compare_jobs(x, labels, args, names, report, resolved, options)
    rows = []
    for job in progress(jobs, desc="estimators"):
        first, steady, values = _timed(job["run"], args.repeat)
        for quantity, value in values.items():
            report.value(quantity, value)
        report.data["timings"][f"{job['name']}_s"] = first
        if steady is not None:
            report.data["timings"][f"{job['name']}_steady_s"] = steady
        for label, quantity in job["rows"]:
            rows.append(
                (
                    label,
                    fmt(values[quantity]),
                    f"{first:.2f}" + (f" / {steady:.2f}" if steady is not None else ""),
                    job["note"],
                )
            )
    report.print(f"Estimators on {args.features} with labels {args.labels}: {header}, {len(np.unique(labels))} classes")
    report.print(
        f"sigma = {inputs.sigma_text(args.sigma, resolved)}, t = {args.t:g}, seed {args.seed}; values in {UNITS}"
    )
    report.print()
    time_head = "time (s)" if args.repeat == 1 else "time (s) first / steady"
    report.print("\n".join(table(("estimate", UNITS, time_head, "notes"), rows, align=["<", ">", ">", "<"])))
    report.print()
    report.print(
        "Entropies are bounded by log2 n = "
        f"{math.log2(x.shape[0]):.4f} bits. Times include compilation"
        + (
            " (first) and the best later run (steady)."
            if args.repeat > 1
            else "; use --repeat 2 for steady-state times."
        )
    )


def _has_reference_package():
    try:
        import dse_dsmi  # noqa: F401
    except ImportError:
        return False
    return True


def _timed(run, repeat):
    with Timer() as timer:
        values = run()
    steady = None
    for _ in range(repeat - 1):
        with Timer() as again:
            run()
        steady = again.seconds if steady is None else min(steady, again.seconds)
    return timer.seconds, steady, values


def _compare_jobs(x, labels, args, names, report, resolved_sigma, options):
    import jax

    import jaxdse
    from jaxdse import baselines

    explicit = args.estimators != list(ESTIMATORS)

    def skip(name, reason):
        # Asked for by name: an error; part of the default set: left out with a note.
        if explicit:
            raise UsageError(f"{name}: {reason}")
        report.note(f"{name} left out: {reason}")

    key = inputs.estimator_key(args.seed)
    mi = dict(key=key, num_repetitions=args.repetitions, estimator=args.estimator, comparison=args.comparison)
    kernel = dict(sigma=args.sigma, t=args.t, alpha=args.alpha, **options)
    jobs = []

    def add(name, rows, note, run):
        jobs.append(dict(name=name, rows=rows, note=note, run=run))

    if "dse" in names:
        add(
            "dse",
            [("DSE(Z)", "dse")],
            "jaxdse, diffusion spectral entropy",
            lambda: {"dse": float(_block(jaxdse.dse(x, **kernel)))},
        )
    if "cse" in names:
        add(
            "cse",
            [("CSE(Z)", "cse")],
            f"classic Shannon entropy, {args.bins} bins per feature",
            lambda: {"cse": float(_block(baselines.cse(x, num_bins_per_dim=args.bins)))},
        )
    if "dsmi" in names:
        add(
            "dsmi",
            [("DSMI(Z; Y)", "dsmi")],
            f"jaxdse, {args.estimator} estimator",
            lambda: {"dsmi": float(_block(jaxdse.dsmi(x, labels, reference_discrete=True, **kernel, **mi)))},
        )
    if "csmi" in names:
        add(
            "csmi",
            [("CSMI(Z; Y)", "csmi")],
            f"classic Shannon MI, same estimator as DSMI; {CSMI_NOTE}",
            lambda: {
                "csmi": float(
                    _block(baselines.csmi(x, labels, num_bins_per_dim=args.bins, reference_discrete=True, **mi))
                )
            },
        )
    if "ksg" in names and args.ksg_k >= x.shape[0]:
        skip("ksg", f"--ksg-k {args.ksg_k} needs more than {args.ksg_k} rows, got n = {x.shape[0]}")
    elif "ksg" in names:
        add(
            "ksg",
            [("KSG I(Z; Y)", "ksg")],
            f"k = {args.ksg_k}, labels as a numeric column",
            lambda: {"ksg": float(_block(baselines.ksg(x, labels.astype(x.dtype), k=args.ksg_k)))},
        )
    n_train = x.shape[0] - int(round(0.2 * x.shape[0]))
    if "mine" in names and (n_train < 2 or x.shape[0] - n_train < 2):
        skip("mine", f"MINE holds out 20% of the rows for its estimate and needs 2 there; n = {x.shape[0]} is too few")
    elif "mine" in names:
        classes, inverse = np.unique(labels, return_inverse=True)
        onehot = np.eye(len(classes), dtype=x.dtype)[inverse]
        batch = min(500, n_train)
        final = min(10, args.mine_epochs)
        add(
            "mine",
            [("MINE I(Z; Y)", "mine")],
            f"{args.mine_epochs} epochs, batch {batch}, one-hot labels",
            lambda: {
                "mine": float(
                    _block(
                        baselines.mine(
                            x,
                            onehot,
                            key=jax.random.fold_in(key, 3),
                            epochs=args.mine_epochs,
                            batch_size=batch,
                            final_epochs=final,
                        ).value
                    )
                )
            },
        )
    sigma = resolved_sigma if isinstance(kernel["sigma"], str) else kernel["sigma"]
    if "reference" in names and sigma is None:
        skip("reference", "the dse-dsmi package has no per-point (knn) bandwidth")
    elif "reference" in names and (args.t != int(args.t) or args.alpha != 0):
        skip("reference", "the dse-dsmi package takes an integer --t and no anisotropy (--alpha 0)")
    elif "reference" in names:
        note = "the authors' package (numpy, float64)"
        if x.shape[0] > 10000:
            note += "; it subsamples to 10000 rows"
        if args.estimator == "plugin":
            note += "; its DSMI is the subsample estimator"

        def reference():
            from dse_dsmi import diffusion_spectral_entropy, diffusion_spectral_mutual_information

            z = np.asarray(x, np.float64)
            with contextlib.redirect_stdout(sys.stderr):
                h = diffusion_spectral_entropy(z, gaussian_kernel_sigma=sigma, t=int(args.t))
                m, _ = diffusion_spectral_mutual_information(
                    z,
                    labels.reshape(-1, 1),
                    reference_discrete=True,
                    gaussian_kernel_sigma=sigma,
                    t=int(args.t),
                    num_repetitions=args.repetitions,
                    random_seed=args.seed,
                )
            return {"reference_dse": float(h), "reference_dsmi": float(m)}

        add(
            "reference",
            [("DSE(Z) dse-dsmi", "reference_dse"), ("DSMI(Z; Y) dse-dsmi", "reference_dsmi")],
            note,
            reference,
        )
    return jobs


def _block(value):
    import jax

    return jax.block_until_ready(value)

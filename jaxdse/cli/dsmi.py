"""``jaxdse dsmi``: mutual information between the rows of a file and labels or a continuous reference."""

from __future__ import annotations

import numpy as np

from jaxdse.cli import inputs
from jaxdse.cli.report import UNITS, UsageError, fmt, table
from jaxdse.cli.solver import solver_options
from jaxdse.io._report import Timer


def run(args, report):
    import jax

    import jaxdse

    x = inputs.read_points(args, report)
    n = x.shape[0]
    labels = reference = None
    if args.labels:
        labels = inputs.read_labels(args, n, report)
    else:
        reference = inputs.read_reference(args, n, report)
    x, labels, reference = inputs.subsample_rows([x, labels, reference], args.max_n, args.seed, report)
    header = inputs.describe_input(report, x)
    resolved = inputs.record_sigma(report, args.sigma, x)
    ts = args.t
    if "auto" in ts and len(ts) > 1:
        raise UsageError("--t auto stands alone: it picks one diffusion time")
    ts = [inputs.resolve_t(v, x, args, inputs.estimator_key(args.seed)) for v in ts]
    t = ts[0] if len(ts) == 1 else np.asarray(ts, inputs.float_dtype())
    report.settings.update(
        t=t,
        alpha=args.alpha,
        base=2,
        solver=args.solver,
        estimator=args.estimator,
        repetitions=args.repetitions,
        comparison=args.comparison,
        seed=args.seed,
    )
    options = solver_options(args)
    if reference is not None:
        labels, ref_text = _labels_from_reference(args, reference, report)
    else:
        ref_text = f"labels {args.labels}"
    with Timer() as timer:
        terms = jaxdse.dsmi_terms(
            x,
            labels,
            key=inputs.estimator_key(args.seed),
            sigma=args.sigma,
            t=t,
            alpha=args.alpha,
            num_repetitions=args.repetitions,
            estimator=args.estimator,
            comparison=args.comparison,
            reference_discrete=True,
            **options,
        )
        terms = jax.block_until_ready(terms)
    report.timings["dsmi_s"] = timer.seconds
    value = report.value("dsmi", _plain(terms.value), "DSMI(Z; Y)")
    classes = np.unique(labels)
    per_class = _per_class(terms, classes)
    report.value("per_class", per_class, "the per-class terms of DSMI(Z; Y)")
    report.data["num_classes"] = len(classes)
    if args.estimator == "plugin":
        report.value("dse", _plain(terms.total_entropy), "DSE(Z)")

    report.print(f"DSMI(Z; Y) of {args.features} with {ref_text}: {header}, {len(classes)} classes")
    t_shown = inputs.t_text(ts[0], args.t[0]) if len(ts) == 1 else ",".join(f"{v:g}" for v in ts)
    report.print(
        f"sigma = {inputs.sigma_text(args.sigma, resolved)}, t = {t_shown}, "
        f"alpha = {args.alpha:g}, estimator = {args.estimator}"
        + (f", {args.repetitions} random subsets per class, seed {args.seed}" if args.estimator == "subsample" else "")
    )
    report.print()
    if len(ts) == 1:
        _print_terms(report, per_class, args.estimator)
        report.print()
        report.print(f"DSMI(Z; Y) = {fmt(value)} {UNITS}")
    else:
        rows = [(f"{v:g}", fmt(m)) for v, m in zip(ts, value)]
        report.print("\n".join(table(("t", f"DSMI(Z; Y) ({UNITS})"), rows, align=[">", ">"])))
    report.print(f"time: {timer.seconds:.2f} s (including compilation)")


def _labels_from_reference(args, reference, report):
    """Classes from a continuous reference: equal-width bins of a column, or clusters of vectors."""
    import jaxdse
    from jaxdse.mi.clustering import bin_reference

    report.settings.update(num_clusters=args.num_clusters)
    with Timer() as timer:
        if reference.ndim == 1 or reference.shape[1] == 1:
            labels = np.asarray(bin_reference(reference.reshape(-1), args.num_clusters))
            how = f"binned into {args.num_clusters} equal-width bins"
        else:
            labels = np.asarray(jaxdse.cluster_reference(reference, args.num_clusters, method=args.cluster_method))
            how = f"clustered into {args.num_clusters} groups ({args.cluster_method} clustering)"
            report.settings["cluster_method"] = args.cluster_method
    report.timings["reference_s"] = timer.seconds
    report.data["reference_shape"] = list(reference.shape)
    return labels, f"reference {args.reference} {how}"


def _plain(value):
    """A Python float, or a list of them for an array of times."""
    arr = np.asarray(value, np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()


def _per_class(terms, classes):
    """One entry per class; with several t the entropies and contributions are lists over t."""
    sizes, weights = np.asarray(terms.class_sizes), np.asarray(terms.class_weights)
    conditional = np.moveaxis(np.asarray(terms.conditional_entropy), -1, 0)  # [C, *T]
    comparison = np.asarray(terms.comparison_entropy)
    contribution = np.moveaxis(np.asarray(terms.per_class), -1, 0)
    entries = []
    for i, c in enumerate(classes):
        entry = {
            "class": c.item(),
            "n": int(sizes[i]),
            "p": float(weights[i]),
            "conditional_dse": _plain(conditional[i]),
            "contribution": _plain(contribution[i]),
        }
        if comparison.shape[-1]:
            entry["comparison_dse"] = _plain(np.moveaxis(comparison.mean(-1), -1, 0)[i])
        entries.append(entry)
    return entries


def _print_terms(report, per_class, estimator):
    compare_head = "DSE(Z*) random" if estimator == "subsample" else "DSE(Z)"
    rows = []
    for e in per_class:
        other = e.get("comparison_dse", report.data.get("dse"))
        rows.append(
            (e["class"], e["n"], f"{e['p']:.3f}", fmt(e["conditional_dse"]), fmt(other), fmt(e["contribution"]))
        )
    head = ("class", "n_c", "p(c)", "DSE(Z|c)", compare_head, "p(c) x diff")
    report.print("\n".join(table(head, rows, align=[">"] * 6)))

"""``jaxdse layers``: DSE (and DSMI) of every layer of saved hidden states, by :func:`jaxdse.layerwise`."""

from __future__ import annotations

import os

import numpy as np

from jaxdse import io
from jaxdse.cli import inputs
from jaxdse.cli.report import UsageError, check_output_file, fmt, table
from jaxdse.cli.solver import solver_options
from jaxdse.io._report import Timer


def _companion(text, features, members, flag, exclude):
    """An array named by ``flag``: a member of the features ``.npz`` (then excluded from the layers), or a file."""
    if text in members:
        exclude.append(text)
        return io.load_array(features, array=text, name=flag.lstrip("-"))
    return io.load_array(text, name=flag.lstrip("-"), text=flag == "--labels")


def _members(path):
    import zipfile

    if os.path.exists(path) and zipfile.is_zipfile(path):
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    return []


def run(args, report):
    import jax

    import jaxdse
    from jaxdse.io import plotting

    _check(args)
    if args.plot is not None:
        check_output_file(args.plot, "--plot", plotting.image_formats())
    options = solver_options(args)
    members, exclude = _members(args.features), []
    mask = None if args.mask is None else _companion(args.mask, args.features, members, "--mask", exclude)
    labels = None if args.labels is None else _companion(args.labels, args.features, members, "--labels", exclude)
    with Timer() as timer:
        loaded = io.load_layers(args.features, array=args.array, exclude=exclude)
    report.timings["load_s"] = timer.seconds
    for text in loaded.notes:
        report.note(text)
    layers = loaded.values
    if not isinstance(layers, list):
        layers = layers.astype(inputs.float_dtype())
    else:
        layers = [h.astype(inputs.float_dtype()) for h in layers]
    report.data["input"] = os.fspath(args.features)
    report.data["input_shape"] = list(loaded.shape)
    normalize = None if args.normalize == "none" else args.normalize
    report.settings.update(
        granularity=args.granularity,
        pool=args.pool,
        normalize=normalize,
        sigma=args.sigma,
        t=args.t,
        alpha=args.alpha,
        base=2,
        solver=args.solver,
    )
    if args.mask is not None:
        report.settings["mask"] = args.mask
    mi_options = None
    if labels is not None:
        report.settings.update(labels=args.labels, estimator=args.estimator, seed=args.seed)
        mi_options = {"estimator": args.estimator}
    key = inputs.estimator_key(args.seed)
    with Timer() as timer:
        prof = jax.block_until_ready(
            jaxdse.layerwise(
                layers,
                mask=mask,
                granularity=args.granularity,
                pool=args.pool,
                normalize=normalize,
                labels=labels,
                sigma=args.sigma,
                t=args.t,
                alpha=args.alpha,
                key=key,
                mi_options=mi_options,
                **options,
            )
        )
    report.timings["layerwise_s"] = timer.seconds
    value = report.value("dse", np.asarray(prof.value, np.float64), "DSE of the layers")
    if args.solver == "slq":
        report.value("dse_stderr", np.asarray(prof.stderr, np.float64), "the standard error of DSE")
    mi = None if prof.mi is None else report.value("dsmi", np.asarray(prof.mi, np.float64), "DSMI of the layers")
    report.data["count"] = np.asarray(prof.count).tolist()
    report.data["normalized"] = np.asarray(prof.normalized, np.float64).tolist()
    report.data["depth"] = np.asarray(prof.depth, np.float64).tolist()
    _print(report, args, value, prof, mi, timer.seconds)
    if args.plot is not None:
        curves = {"DSE": value} if mi is None else {"DSE": value, "DSMI(Z; Y)": mi}
        sigma = inputs.sigma_text(args.sigma, None)
        title = f"{os.path.basename(args.features)}: {args.granularity}, sigma = {sigma}, t = {args.t:g}"
        fig = plotting.layer_profile_figure(curves, title=title, ylabel="bits" if mi is not None else None)
        plotting.save_figure(fig, args.plot)
        report.data["plot"] = args.plot


def _print(report, args, value, prof, mi, seconds):
    L = value.shape[0]
    per_prompt = value.ndim == 2
    report.print(f"Layers of {args.features}: {L} layers, granularity {args.granularity}")
    report.print()
    head = ["layer", "depth", "points", "DSE" + (" (mean over prompts)" if per_prompt else ""), "DSE / log2 n"]
    if mi is not None:
        head.append("DSMI(Z; Y)")
    count = np.asarray(prof.count)
    normalized = np.asarray(prof.normalized, np.float64)
    rows = []
    for i in range(L):
        row = [
            str(i),
            f"{float(prof.depth[i]):.2f}",
            f"{count[i].mean():.0f}" if per_prompt else str(int(count[i])),
            fmt(float(np.mean(value[i]))) + (f" +- {np.std(value[i]):.4f}" if per_prompt else ""),
            fmt(float(np.nanmean(normalized[i]))),
        ]
        if mi is not None:
            row.append(fmt(float(mi[i])))
        rows.append(row)
    report.print("\n".join(table(head, rows)))
    report.print()
    report.print(f"time: {seconds:.2f} s (one compiled call for the stack, including compilation)")


def _check(args):
    """Settings the parser cannot check alone."""
    if args.labels is not None and args.granularity == "prompt":
        raise UsageError("--labels: per-layer DSMI needs --granularity tokens or dataset")

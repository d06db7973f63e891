"""``jaxdse sweep``: DSE (and DSMI) over a grid of sigma and t, computed by :func:`jaxdse.mi.sweep.sweep`."""

from __future__ import annotations

import math
import os

import numpy as np

from jaxdse.cli import inputs
from jaxdse.cli.report import UsageError, check_output_file, grid_table
from jaxdse.cli.solver import solver_options
from jaxdse.io._report import Timer

DEFAULT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def run(args, report):
    import jax

    from jaxdse.io import plotting
    from jaxdse.mi.sweep import sweep

    if args.plot is not None:
        check_output_file(args.plot, "--plot", plotting.image_formats())
    options = solver_options(args)
    x = inputs.read_points(args, report)
    labels = inputs.read_labels(args, x.shape[0], report) if args.labels else None
    x, labels = inputs.subsample_rows([x, labels], args.max_n, args.seed, report)
    header = inputs.describe_input(report, x)
    sigmas, sigma_labels = _sigmas(args.sigma, x, report)
    ts = sorted(set(args.t))
    report.settings.update(sigma=sigmas, t=ts, alpha=args.alpha, base=2, solver=args.solver)
    if labels is not None:
        report.settings.update(
            estimator=args.estimator, repetitions=args.repetitions, comparison=args.comparison, seed=args.seed
        )
    with Timer() as timer:
        result = jax.block_until_ready(
            sweep(
                x,
                sigmas,
                ts,
                labels=labels,
                key=inputs.estimator_key(args.seed),
                alpha=args.alpha,
                num_repetitions=args.repetitions,
                estimator=args.estimator,
                comparison=args.comparison,
                **options,
            )
        )
    report.timings["sweep_s"] = timer.seconds
    grid = report.value("dse", np.asarray(result.dse), "DSE over the grid")
    mi = None if result.dsmi is None else report.value("dsmi", np.asarray(result.dsmi), "DSMI over the grid")
    report.print(f"Sweep of {args.features}: {header}; {len(sigmas)} sigmas x {len(ts)} times")
    report.print()
    report.print(f"DSE (bits), rows sigma, columns t (upper bound log2 n = {math.log2(x.shape[0]):.4f}):")
    report.print("\n".join(grid_table(grid, sigmas, ts, sigma_labels)))
    if mi is not None:
        report.print()
        report.print(f"DSMI(Z; Y) (bits) with labels {args.labels}, rows sigma, columns t:")
        report.print("\n".join(grid_table(mi, sigmas, ts, sigma_labels)))
    report.print(f"time: {timer.seconds:.2f} s (one compiled call, including compilation)")
    if args.plot is not None:
        fig = plotting.sweep_figure(
            sigmas, ts, grid, mi, title=os.path.basename(args.features), sigma_labels=sigma_labels
        )
        plotting.save_figure(fig, args.plot)
        report.data["plot"] = args.plot
        report.print()
        report.print(f"heatmap written to {args.plot}")


def _sigmas(given, x, report):
    """Sorted, distinct bandwidths and their labels (a resolved rule is labelled as such)."""
    if given is None:
        median = inputs.resolve_rule("median", x)
        report.note(f"no --sigma given: sweeping the median heuristic ({median:.4g}) times 1/4, 1/2, 1, 2, 4")
        named = {median * f: (f"median (= {median:.3g})" if f == 1.0 else f"{median * f:.4g}") for f in DEFAULT_FACTORS}
    else:
        named = {}
        for s in given:
            value = inputs.resolve_rule(s, x) if isinstance(s, str) else float(s)
            named.setdefault(value, f"{s} (= {value:.3g})" if isinstance(s, str) else f"{value:.4g}")
    sigmas = sorted(named)
    if not sigmas[0] > 0:
        raise UsageError(f"--sigma: every sigma must be positive, got {sigmas[0]:g}")
    return sigmas, [named[s] for s in sigmas]

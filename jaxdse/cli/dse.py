"""``jaxdse dse``: the diffusion spectral entropy of the rows of a file."""

from __future__ import annotations

from jaxdse.cli import inputs
from jaxdse.cli.report import UNITS, UsageError, fmt, table
from jaxdse.cli.solver import dse_with_stderr
from jaxdse.io._report import Timer


def run(args, report):
    from jaxdse.entropy.spectral import max_entropy

    _check(args)
    x = inputs.read_points(args, report)
    (x,) = inputs.subsample_rows([x], args.max_n, args.seed, report)
    header = inputs.describe_input(report, x)
    resolved = inputs.record_sigma(report, args.sigma, x)
    t = inputs.resolve_t(args.t, x, args, inputs.estimator_key(args.seed))
    report.settings.update(t=t, alpha=args.alpha, solver=args.solver, base=2)
    if args.t == "auto":
        report.settings["t_rule"] = "auto"
    kernel = dict(sigma=args.sigma, t=t, alpha=args.alpha)
    with Timer() as timer:
        value, stderr, settings = dse_with_stderr(x, inputs.estimator_key(args.seed), args, **kernel)
    if stderr is not None:
        report.settings.update(seed=args.seed, **settings)
    report.timings["dse_s"] = timer.seconds
    report.value("dse", value, "DSE(X)")
    if stderr is not None:
        report.value("dse_stderr", stderr, "the standard error of DSE(X)")
    count = None
    if args.eigenvalue_count:
        report.settings["threshold"] = args.threshold
        count = report.data["eigenvalue_count"] = _count(x, t, args)
    bound = max_entropy(x.shape[0])
    report.data["max_dse"] = bound
    report.print(f"DSE of {args.features}: {header}")
    report.print(
        f"sigma = {inputs.sigma_text(args.sigma, resolved)}, t = {inputs.t_text(t, args.t)}, alpha = {args.alpha:g}, "
        f"solver = {args.solver}"
    )
    report.print()
    rows = [("DSE(X)", fmt(value) + (f" +- {stderr:.4f}" if stderr is not None else ""), UNITS)]
    rows.append(("upper bound log2 n", fmt(bound), UNITS))
    if args.eigenvalue_count:
        rows.append((f"eigenvalues with |lambda|^t > {args.threshold:g}", str(count), "count"))
    report.print("\n".join(table(("quantity", "value", "unit"), rows)))
    report.print()
    report.print(f"time: {timer.seconds:.2f} s (including compilation; load {report.timings['load_s']:.2f} s)")


def _count(x, t, args):
    """``jaxdse.eigenvalue_count`` with the command's settings (recorded in the report as ``eigenvalue_count``)."""
    import jaxdse

    return int(jaxdse.eigenvalue_count(x, t=t, threshold=args.threshold, sigma=args.sigma, alpha=args.alpha))


def _check(args):
    if args.threshold is not None and not args.eigenvalue_count:
        raise UsageError("--threshold is a setting of --eigenvalue-count")
    if args.eigenvalue_count:
        if args.solver in ("slq", "nystrom"):
            raise UsageError("--eigenvalue-count needs every eigenvalue: --solver exact or eigh")
        args.threshold = 1e-6 if args.threshold is None else args.threshold

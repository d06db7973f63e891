"""The command line's inputs: files read through :mod:`jaxdse.io`, explicit subsampling, bandwidth rules."""

from __future__ import annotations

import math
import os

import numpy as np

from jaxdse import io
from jaxdse.cli.report import UsageError
from jaxdse.io._report import Timer


def float_dtype():
    """float64 under ``--x64``, else float32."""
    import jax

    return np.float64 if jax.config.jax_enable_x64 else np.float32


def _record(loaded, report, path, field):
    for text in loaded.notes:
        report.note(text)
    report.data[field] = os.fspath(path)
    return loaded.values


def read_points(args, report):
    """``[n, d]`` points from ``args.features`` (``--array``), in the working float type."""
    with Timer() as timer:
        loaded = io.load_points(args.features, array=args.array)
    report.timings["load_s"] = timer.seconds
    x = _record(loaded, report, args.features, "input")
    if args.array is not None:
        report.data["input_array"] = args.array
    report.data["input_shape"] = list(loaded.shape)
    return x.astype(float_dtype())


def read_labels(args, n, report):
    """Integer class labels ``[n]`` from ``args.labels`` (``--labels-array``)."""
    loaded = io.load_labels(args.labels, n, array=args.labels_array, features=args.features)
    return _record(loaded, report, args.labels, "labels")


def read_reference(args, n, report):
    """A continuous reference ``[n]`` or ``[n, d']`` from ``args.reference`` (``--labels-array``)."""
    loaded = io.load_reference(args.reference, n, array=args.labels_array, features=args.features)
    return _record(loaded, report, args.reference, "reference")


def subsample_rows(arrays, max_n, seed, report):
    """The same ``max_n`` random rows (uniform, without replacement) of every array (``None`` stays)."""
    n = arrays[0].shape[0]
    if max_n is None:
        return arrays
    report.settings["max_n"] = max_n
    if n <= max_n:
        report.note(f"--max-n {max_n} >= n = {n}: all rows are used")
        return arrays
    from jaxdse.entropy.estimators import subsample_indices

    idx = np.asarray(subsample_indices(n, subsample_key(seed), max_n)[0])
    report.note(f"using {max_n} of {n} rows, drawn at random without replacement (--seed {seed})")
    report.data["subsampled_from"] = n
    return [None if a is None else a[idx] for a in arrays]


def subsample_key(seed):
    """The key of ``--max-n``'s draw for ``--seed``: ``jaxdse.dse(x, max_n=m, key=subsample_key(seed))``
    uses the same rows."""
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


def estimator_key(seed):
    """The key of the random subsets (DSMI, SLQ, MINE) for ``--seed``."""
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), 2)


def resolve_t(t, x, args, key):
    """A number for ``--t auto`` (the knee of DSE against t, :func:`jaxdse.choose_t`); other values unchanged."""
    if t != "auto":
        return t
    import jaxdse
    from jaxdse.cli.solver import solver_options

    return float(jaxdse.choose_t(x, sigma=args.sigma, alpha=args.alpha, key=key, **solver_options(args)))


def t_text(t, given):
    return f"auto (= {t:.4g})" if given == "auto" else f"{t:g}"


def describe_input(report, x):
    n, d = x.shape
    report.data["n"], report.data["d"] = n, d
    return f"n = {n} points, d = {d} features ({report.data['device']}, {report.data['dtype']})"


def resolve_rule(sigma, x):
    """The number a 'median' or 'sqrt_dim' rule stands for (None for 'knn' or a number).

    Raises:
      UsageError: the median distance is 0 (e.g. most rows are duplicates).
    """
    if sigma == "sqrt_dim":
        return math.sqrt(x.shape[1])
    if sigma == "median":
        from jaxdse.kernels.points import resolved_sigma

        value = float(resolved_sigma(x, "median"))
        if not value > 0:
            raise UsageError(
                f"--sigma median: the median distance between rows is {value:g} (are most rows duplicates?), "
                "and sigma must be positive; give --sigma a number"
            )
        return value
    return None


def sigma_text(sigma, resolved):
    if isinstance(sigma, str):
        return f"{sigma} (= {resolved:.4g})" if resolved is not None else sigma
    return f"{sigma:g}"


def record_sigma(report, sigma, x):
    """Resolve a rule, record ``sigma`` (and its value) in the settings; returns the value or None."""
    resolved = resolve_rule(sigma, x)
    report.settings["sigma"] = sigma
    if resolved is not None:
        report.settings["sigma_value"] = resolved
    return resolved

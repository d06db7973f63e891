"""The ``jaxdse`` command: DSE, DSMI, sweeps and comparisons on arrays saved in files.

::

    jaxdse dse FEATURES [--sigma S|median|sqrt_dim|knn[:K]] [--t T] [--alpha A] [--method M]
    jaxdse dsmi FEATURES (--labels FILE | --reference FILE) [--n-clusters K] [--repetitions R]
    jaxdse sweep FEATURES [--labels FILE] --sigma LIST --t LIST [--plot OUT.png]
    jaxdse compare FEATURES --labels FILE [--estimators LIST]
    jaxdse demo [--out DIR]

Every subcommand takes ``--json`` (one JSON object on stdout), ``--device cpu|gpu``,
``--x64``, ``--max-n N`` with ``--seed S`` (explicit random subsampling of the
rows) and ``--debug``. Inputs are ``.npy``, ``.npz`` (``--key NAME``),
``.csv``/``.tsv``/``.txt``; arrays of rank > 2 are flattened to ``[n, features]``.
Bad input gives one line on stderr and exit status 2.

:func:`main` is the entry point; it takes the argument list and returns the
exit status, so it can be called from Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback

import numpy as np

from jaxdse.io import InputError, load_array

UNITS = "bits"
RULES = ("median", "sqrt_dim", "knn", "knn:K")
DSE_METHODS = ("auto", "eigh", "tridiagonal", "slq")
ESTIMATORS = ("dse", "cse", "dsmi", "csmi", "ksg", "mine", "reference")
# The values, listed first in the JSON output.
VALUE_KEYS = ("dse", "dse_stderr", "dsmi", "cse", "csmi", "ksg", "mine", "reference_dse", "reference_dsmi", "accuracy")


class UsageError(Exception):
    """A problem the user can fix: reported as one line, exit status 2."""


# ---------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line (exit status 2) instead of usage + error."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _sigma(text):
    if text in ("median", "sqrt_dim", "knn") or text.startswith("knn:"):
        if text.startswith("knn:"):
            try:
                if int(text[4:]) < 1:
                    raise ValueError
            except ValueError:
                raise argparse.ArgumentTypeError(f"knn:K needs an integer K >= 1, got {text!r}") from None
        return text
    value = _positive_float(text, "a positive number or one of " + ", ".join(RULES))
    return value


def _positive_float(text, expected="a positive number"):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _alpha(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _list_of(item, what):
    def parse(text):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
        return [item(p) for p in parts]

    return parse


def _sweep_sigma(text):
    if text in ("median", "sqrt_dim"):
        return text
    return _positive_float(text, "positive numbers, 'median' or 'sqrt_dim'")


def _estimators(text):
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return list(ESTIMATORS)
    for name in names:
        if name not in ESTIMATORS:
            raise argparse.ArgumentTypeError(
                f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)} or 'all'"
            )
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of estimators")
    return names


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    group.add_argument("--device", choices=("cpu", "gpu"), help="where to compute (default: jax's default device)")
    group.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    group.add_argument("--seed", type=_int_at_least(0), default=0, help="seed for subsampling and random subsets (default 0)")
    group.add_argument("--debug", action="store_true", help="show the Python traceback on errors")

    data = _Parser(add_help=False)
    group = data.add_argument_group("input options")
    group.add_argument("--key", metavar="NAME", help="array name inside an .npz file")
    group.add_argument(
        "--max-n",
        type=_int_at_least(2),
        metavar="N",
        help="use N rows drawn at random without replacement (with --seed) when there are more; "
        "off by default: nothing is subsampled silently",
    )

    kernel = _Parser(add_help=False)
    group = kernel.add_argument_group("diffusion settings")
    group.add_argument(
        "--sigma",
        type=_sigma,
        default=10.0,
        help="Gaussian bandwidth: a number, 'median', 'sqrt_dim', 'knn' or 'knn:K' (default 10, as the reference)",
    )
    group.add_argument("--t", type=_positive_float, default=1.0, help="diffusion time t > 0 (default 1)")
    group.add_argument("--alpha", type=_alpha, default=0.0, help="anisotropy in [0, 1] (default 0)")

    mi = _Parser(add_help=False)
    group = mi.add_argument_group("mutual information settings")
    group.add_argument("--repetitions", type=_int_at_least(1), default=5, help="random subsets per class (default 5)")
    group.add_argument(
        "--estimator",
        choices=("subsample", "plugin"),
        default="subsample",
        help="DSMI estimator (default subsample, as the reference)",
    )
    group.add_argument(
        "--comparison",
        choices=("shared", "independent"),
        default="shared",
        help="random subsets: shared by classes of equal size (default, as the reference) or drawn per class",
    )

    parser = _Parser(
        prog="jaxdse",
        description="Diffusion spectral entropy (DSE) and mutual information (DSMI) of arrays saved in files. "
        "Values are in bits.",
        epilog="Start with 'jaxdse demo'. Inputs: .npy, .npz (--key NAME), .csv/.tsv/.txt (header optional); "
        "arrays of rank > 2 (e.g. images [n, h, w, c]) are flattened to [n, h*w*c].",
    )
    parser.add_argument("--version", action="version", version=f"jaxdse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "dse",
        parents=[kernel, data, common],
        help="diffusion spectral entropy of the rows of a file",
        description="Diffusion spectral entropy DSE(X) in bits of the n rows (points) of FEATURES [n, d].",
    )
    p.add_argument("features", metavar="FEATURES", help="points [n, d] (.npy, .npz, .csv, .tsv, .txt)")
    p.add_argument("--method", choices=DSE_METHODS, default="auto", help="eigenvalue method (default auto)")

    p = sub.add_parser(
        "dsmi",
        parents=[kernel, mi, data, common],
        help="diffusion spectral mutual information with labels or a reference",
        description="DSMI(Z; Y) in bits between the rows of FEATURES and class labels (--labels) "
        "or a continuous reference (--reference), e.g. the flattened inputs.",
    )
    p.add_argument("features", metavar="FEATURES", help="representation Z [n, d]")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--labels", metavar="FILE", help="integer class labels [n] (or one-hot [n, C])")
    ref.add_argument("--reference", metavar="FILE", help="continuous reference [n] (binned) or [n, d'] (clustered)")
    p.add_argument("--labels-key", metavar="NAME", help="array name inside an .npz labels/reference file")
    p.add_argument(
        "--n-clusters", type=_int_at_least(2), default=10, help="bins or clusters for --reference (default 10)"
    )
    p.add_argument(
        "--cluster-method",
        choices=("spectral", "diffusion"),
        default="spectral",
        help="clustering of an [n, d'] reference: scikit-learn spectral clustering as the reference "
        "package (default), or pure-JAX diffusion k-means",
    )

    p = sub.add_parser(
        "sweep",
        parents=[mi, data, common],
        help="DSE (and DSMI) over a grid of sigma and t, as one vmapped computation",
        description="DSE (and DSMI with --labels) in bits over every (sigma, t) pair, computed as one "
        "compiled, vmapped call: one eigendecomposition per sigma serves all t.",
    )
    p.add_argument("features", metavar="FEATURES", help="points [n, d]")
    p.add_argument("--labels", metavar="FILE", help="integer class labels [n]: also sweep DSMI")
    p.add_argument("--labels-key", metavar="NAME", help="array name inside an .npz labels file")
    p.add_argument(
        "--sigma",
        type=_list_of(_sweep_sigma, "sigmas"),
        default=None,
        metavar="LIST",
        help="comma-separated bandwidths; 'median' and 'sqrt_dim' are resolved to numbers "
        "(default: the median heuristic times 1/4, 1/2, 1, 2, 4)",
    )
    p.add_argument(
        "--t",
        type=_list_of(_positive_float, "diffusion times"),
        default=[1.0, 2.0, 5.0, 10.0],
        metavar="LIST",
        help="comma-separated diffusion times (default 1,2,5,10)",
    )
    p.add_argument("--alpha", type=_alpha, default=0.0, help="anisotropy in [0, 1] (default 0)")
    p.add_argument("--plot", metavar="OUT.png", help="write a heatmap of the grid (needs matplotlib)")

    p = sub.add_parser(
        "compare",
        parents=[kernel, mi, data, common],
        help="DSE/DSMI next to CSE/CSMI, KSG, MINE and the reference package, with timings",
        description="Entropy and mutual information estimates for FEATURES and --labels from several "
        "estimators, in bits, each with its wall time.",
    )
    p.add_argument("features", metavar="FEATURES", help="representation Z [n, d]")
    p.add_argument("--labels", metavar="FILE", required=True, help="integer class labels [n]")
    p.add_argument("--labels-key", metavar="NAME", help="array name inside an .npz labels file")
    p.add_argument(
        "--estimators",
        type=_estimators,
        default=list(ESTIMATORS),
        metavar="LIST",
        help="comma-separated subset of " + ",".join(ESTIMATORS) + " (default all; 'reference' only "
        "where the dse-dsmi package is installed)",
    )
    p.add_argument("--bins", type=_int_at_least(1), default=2, help="bins per feature for CSE/CSMI (default 2)")
    p.add_argument("--ksg-k", type=_int_at_least(1), default=3, help="neighbours for KSG (default 3)")
    p.add_argument("--mine-epochs", type=_int_at_least(1), default=100, help="MINE training epochs (default 100)")
    p.add_argument(
        "--repeat",
        type=_int_at_least(1),
        default=1,
        help="run each estimator this many times; with 2 or more the steady-state time (after compilation) "
        "is reported too",
    )

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="train a small Flax model on the shipped digits and track DSE(Z) and DSMI(Z; Y)",
        description="Trains a small convolutional network on the 8x8 digits shipped with scikit-learn and "
        "prints, per epoch, test accuracy, DSE(Z) and DSMI(Z; Y) of the penultimate layer; writes a PNG "
        "of the curves and the numbers to --out.",
    )
    p.add_argument("--out", metavar="DIR", default="jaxdse-demo", help="output folder (default ./jaxdse-demo)")
    p.add_argument("--epochs", type=_int_at_least(1), default=None, help="training epochs (default: the demo's)")
    p.add_argument(
        "--subset", type=_int_at_least(20), default=None, metavar="N", help="use only N of the 1797 digits (quick runs)"
    )
    return parser


def _version():
    from jaxdse import __version__

    return __version__


# ---------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help, --version
            return int(done.code or 0)
        if args.command is None:
            parser.print_help()
            return 0
        return _run(args)
    except (UsageError, InputError, ValueError, TypeError, MemoryError, ImportError) as err:
        # The user's to fix: bad input or settings (the library's checks name the
        # argument), too little memory, a missing optional package.
        return _fail(err, debug, prog=_prog(argv))
    except KeyboardInterrupt:
        print("jaxdse: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last resort keeps the promise of one line
        if debug:
            traceback.print_exc()
        print(
            f"{_prog(argv)}: unexpected error: {type(err).__name__}: {_one_line(err)} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1


def _prog(argv):
    commands = ("dse", "dsmi", "sweep", "compare", "demo")
    command = next((a for a in argv if a in commands), None)
    return f"jaxdse {command}" if command else "jaxdse"


def _one_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _fail(err, debug, *, prog) -> int:
    if debug:
        traceback.print_exc()
    print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
    return 2


def _run(args) -> int:
    import jax

    device = _select_device(args.device)
    x64 = jax.enable_x64(True) if args.x64 else contextlib.nullcontext()
    with x64, jax.default_device(device):
        report = Report(args, device)
        COMMANDS[args.command](args, report)
        report.emit()
    return 0


def _select_device(name):
    import jax

    if name is None:
        return jax.devices()[0]
    try:
        return jax.devices(name)[0]
    except RuntimeError:
        available = sorted({d.platform for d in jax.devices()})
        raise UsageError(
            f"--device {name}: jax has no {name.upper()} here (available: {', '.join(available)}); "
            + ("install a CUDA-enabled jax, e.g. pip install 'jax[cuda12]'" if name == "gpu" else "")
        ) from None


# ---------------------------------------------------------------- output


class Report:
    """Collects the values of one run; prints tables, or one JSON object with ``--json``."""

    def __init__(self, args, device):
        import jax

        self.json = args.json
        self.data = {
            "command": args.command,
            "jaxdse_version": _version(),
            "units": UNITS,
            "device": f"{device.platform}:{device.id}",
            "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
            "settings": {},
            "timings": {},
            "notes": [],
        }

    def note(self, text):
        """A remark for the user: on stderr at once, and in the JSON's ``notes``."""
        self.data["notes"].append(text)
        print(f"note: {text}", file=sys.stderr)

    def print(self, text=""):
        """A line of the readable output (printed at once; nothing with ``--json``)."""
        if not self.json:
            print(text, flush=True)

    def emit(self):
        """With ``--json``: the one JSON object on stdout, its main keys first."""
        if not self.json:
            return
        first = ("command", "input", "n", "d") + VALUE_KEYS + ("units", "settings", "device", "dtype", "timings")
        ordered = {k: self.data[k] for k in first if k in self.data}
        ordered.update((k, v) for k, v in self.data.items() if k not in ordered)
        sys.stdout.write(json.dumps(_jsonable(ordered), indent=2) + "\n")
        sys.stdout.flush()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) or type(value).__module__.startswith("jax"):
        arr = np.asarray(value)
        return _jsonable(arr.tolist()) if arr.ndim else _jsonable(arr.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header, rows, align=None):
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    out = []
    for k, row in enumerate(cells):
        out.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def progress(iterable, *, total=None, desc=None, disable=False):
    """A progress bar on stderr (tqdm where installed and stderr is a terminal)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the data extra
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=True if disable else None, leave=False)


class Timer:
    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


def _block(value):
    import jax

    return jax.block_until_ready(value)


# ---------------------------------------------------------------- inputs


def load_features(path, report, *, key=None, name="features"):
    """``[n, d]`` float points from a file, flattened from higher rank with a note."""
    with Timer() as timer:
        raw = load_array(path, key=key, name=name)
    report.data["timings"]["load_s"] = timer.seconds
    report.data["input"] = os.fspath(path)
    if key is not None:
        report.data["input_key"] = key
    report.data["input_shape"] = list(raw.shape)
    x = _as_numeric(raw, path, name)
    if x.ndim == 0:
        raise UsageError(f"{name} file {path!r} holds a single number; expected points of shape [n, d]")
    if x.ndim == 1:
        report.note(f"{path} has shape ({x.shape[0]},): read as {x.shape[0]} points with 1 feature")
        x = x.reshape(-1, 1)
    elif x.ndim > 2:
        flat = int(np.prod(x.shape[1:]))
        report.note(f"{path} has shape {tuple(x.shape)}: flattened to [{x.shape[0]}, {flat}] (one row per sample)")
        x = x.reshape(x.shape[0], flat)
    n, d = x.shape
    if n < 2:
        raise UsageError(f"{name} file {path!r} has {n} row(s); DSE needs at least 2 points (rows)")
    if d == 0:
        raise UsageError(f"{name} file {path!r} has no feature columns (shape {tuple(raw.shape)})")
    _check_finite(x, path, name)
    return x.astype(_float_dtype())


def _float_dtype():
    import jax

    return np.float64 if jax.config.jax_enable_x64 else np.float32


def _as_numeric(arr, path, name):
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UsageError(f"{name} file {path!r} holds {arr.dtype} values; expected numbers (integers or floats)")
    return arr


def _check_finite(arr, path, name):
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise UsageError(
                f"{name} file {path!r} contains {int(bad.sum())} NaN or infinite value(s) in {len(rows)} row(s) "
                f"(rows {shown}); remove or impute them first"
            )


def load_labels(path, n, report, *, key=None, features_path=""):
    """Integer class labels ``[n]`` (strings and one-hot rows are accepted, with a note)."""
    raw = load_array(path, key=key, name="labels")
    report.data["labels"] = os.fspath(path)
    y = raw
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.shape[1] > 1 and _is_one_hot(y):
        report.note(f"{path} holds one-hot rows [{y.shape[0]}, {y.shape[1]}]: read as class indices (argmax)")
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise UsageError(
            f"labels file {path!r} has shape {tuple(raw.shape)}; expected one label per sample, [n] or [n, 1] "
            "(for vectors such as flattened inputs use 'jaxdse dsmi --reference FILE')"
        )
    if y.shape[0] != n:
        raise UsageError(
            f"labels file {path!r} has {y.shape[0]} labels but {features_path or 'the features'} has {n} rows; "
            "they must describe the same samples in the same order"
        )
    if y.dtype.kind in "US":
        values, y = np.unique(y, return_inverse=True)
        report.note(f"{path}: {len(values)} text labels mapped to classes 0..{len(values) - 1} in sorted order")
    elif y.dtype == np.bool_:
        y = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        _check_finite(y, path, "labels")
        if not np.all(y == np.round(y)):
            example = y[np.flatnonzero(y != np.round(y))[0]]
            raise UsageError(
                f"labels file {path!r} holds non-integer values (e.g. {example:g}); class labels must be integers "
                "(for a continuous reference use 'jaxdse dsmi --reference FILE')"
            )
        y = y.astype(np.int64)
    elif not np.issubdtype(y.dtype, np.integer):
        raise UsageError(f"labels file {path!r} holds {y.dtype} values; expected integer class labels")
    classes = np.unique(y)
    if len(classes) < 2:
        report.note(f"{path} holds a single class: the mutual information is 0")
    return np.asarray(y, np.int64)


def _is_one_hot(y):
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        return False
    y = np.asarray(y, np.float64)
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def load_reference(path, n, report, *, key=None, features_path=""):
    """A continuous reference ``[n]`` or ``[n, d']`` (flattened from higher rank, with a note)."""
    raw = load_array(path, key=key, name="reference")
    report.data["reference"] = os.fspath(path)
    ref = _as_numeric(raw, path, "reference")
    if ref.ndim == 0:
        raise UsageError(f"reference file {path!r} holds a single number; expected [n] or [n, d'] values")
    if ref.ndim > 2:
        flat = int(np.prod(ref.shape[1:]))
        report.note(f"{path} has shape {tuple(ref.shape)}: flattened to [{ref.shape[0]}, {flat}]")
        ref = ref.reshape(ref.shape[0], flat)
    if ref.shape[0] != n:
        raise UsageError(
            f"reference file {path!r} has {ref.shape[0]} rows but {features_path or 'the features'} has {n}; "
            "they must describe the same samples in the same order"
        )
    _check_finite(ref.astype(np.float64), path, "reference")
    return ref.astype(np.float64)


def subsample_rows(arrays, max_n, seed, report):
    """The same ``max_n`` random rows (uniform, without replacement) of every array."""
    n = arrays[0].shape[0]
    if max_n is None:
        return arrays
    report.data["settings"]["max_n"] = max_n
    if n <= max_n:
        report.note(f"--max-n {max_n} >= n = {n}: all rows are used")
        return arrays
    import jax

    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    idx = np.sort(np.asarray(jax.random.choice(key, n, (max_n,), replace=False)))
    report.note(f"using {max_n} of {n} rows, drawn at random without replacement (--seed {seed})")
    report.data["subsampled_from"] = n
    return [None if a is None else a[idx] for a in arrays]


def _estimator_key(seed):
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), 2)


def _describe_input(report, x):
    n, d = x.shape
    report.data["n"], report.data["d"] = n, d
    return f"n = {n} points, d = {d} features ({report.data['device']}, {report.data['dtype']})"


def _resolve_rule(sigma, x):
    """The number a 'median' or 'sqrt_dim' rule stands for (None for 'knn' or a number)."""
    if sigma == "sqrt_dim":
        return math.sqrt(x.shape[1])
    if sigma == "median":
        import jax.numpy as jnp

        from jaxdse.affinity import median_sigma, pairwise_sq_distances

        return float(median_sigma(pairwise_sq_distances(jnp.asarray(x))))
    return None


def _sigma_text(sigma, resolved):
    if isinstance(sigma, str):
        return f"{sigma} (= {resolved:.4g})" if resolved is not None else sigma
    return f"{sigma:g}"


# ---------------------------------------------------------------- dse


def cmd_dse(args, report):
    import jaxdse

    x = load_features(args.features, report, key=args.key)
    (x,) = subsample_rows([x], args.max_n, args.seed, report)
    header = _describe_input(report, x)
    resolved = _resolve_rule(args.sigma, x)
    settings = report.data["settings"]
    settings.update(sigma=args.sigma, t=args.t, alpha=args.alpha, method=args.method, base=2)
    if resolved is not None:
        settings["sigma_value"] = resolved
    stderr = None
    with Timer() as timer:
        if args.method == "slq":
            from jaxdse.slq import dse_slq

            result = dse_slq(x, key=_estimator_key(args.seed), sigma=args.sigma, t=args.t, alpha=args.alpha)
            value, stderr = float(_block(result.value)), float(result.stderr)
            settings.update(seed=args.seed, num_probes=result.num_probes, num_matvecs=result.num_matvecs)
        else:
            value = float(_block(jaxdse.dse(x, sigma=args.sigma, t=args.t, alpha=args.alpha, method=args.method)))
    report.data["timings"]["dse_s"] = timer.seconds
    report.data["dse"] = value
    if stderr is not None:
        report.data["dse_stderr"] = stderr
    bound = jaxdse.entropy.max_entropy(x.shape[0])
    report.data["max_dse"] = bound
    report.print(f"DSE of {args.features}: {header}")
    report.print(
        f"sigma = {_sigma_text(args.sigma, resolved)}, t = {args.t:g}, alpha = {args.alpha:g}, method = {args.method}"
    )
    report.print()
    rows = [("DSE(X)", _fmt(value) + (f" +- {stderr:.4f}" if stderr is not None else ""), UNITS)]
    rows.append(("upper bound log2 n", _fmt(bound), UNITS))
    report.print("\n".join(_table(("quantity", "value", "unit"), rows)))
    report.print()
    report.print(f"time: {timer.seconds:.2f} s (including compilation; load {report.data['timings']['load_s']:.2f} s)")


# ---------------------------------------------------------------- dsmi


def cmd_dsmi(args, report):
    import jaxdse

    x = load_features(args.features, report, key=args.key)
    n = x.shape[0]
    labels = reference = None
    if args.labels:
        labels = load_labels(args.labels, n, report, key=args.labels_key, features_path=args.features)
    else:
        reference = load_reference(args.reference, n, report, key=args.labels_key, features_path=args.features)
    x, labels, reference = subsample_rows([x, labels, reference], args.max_n, args.seed, report)
    header = _describe_input(report, x)
    settings = report.data["settings"]
    resolved = _resolve_rule(args.sigma, x)
    settings.update(
        sigma=args.sigma,
        t=args.t,
        alpha=args.alpha,
        base=2,
        estimator=args.estimator,
        repetitions=args.repetitions,
        comparison=args.comparison,
        seed=args.seed,
    )
    if resolved is not None:
        settings["sigma_value"] = resolved
    key = _estimator_key(args.seed)
    if reference is not None:
        settings.update(n_clusters=args.n_clusters)
        column = reference.ndim == 1 or reference.shape[1] == 1
        with Timer() as timer:
            if column:
                from jaxdse.dsmi import bin_reference

                labels = np.asarray(bin_reference(reference.reshape(-1), args.n_clusters))
                how = f"binned into {args.n_clusters} equal-width bins"
            else:
                labels = np.asarray(
                    jaxdse.cluster_reference(reference, args.n_clusters, method=args.cluster_method)
                )
                how = f"clustered into {args.n_clusters} groups ({args.cluster_method} clustering)"
                settings["cluster_method"] = args.cluster_method
        report.data["timings"]["reference_s"] = timer.seconds
        report.data["reference_shape"] = list(reference.shape)
        ref_text = f"reference {args.reference} {how}"
    else:
        ref_text = f"labels {args.labels}"
    with Timer() as timer:
        terms = jaxdse.dsmi_terms(
            x,
            labels,
            key=key,
            sigma=args.sigma,
            t=args.t,
            alpha=args.alpha,
            num_repetitions=args.repetitions,
            estimator=args.estimator,
            comparison=args.comparison,
            reference_discrete=True,
        )
        value = float(_block(terms.value))
    report.data["timings"]["dsmi_s"] = timer.seconds
    report.data["dsmi"] = value
    classes = np.unique(labels)
    sizes = np.asarray(terms.class_sizes)
    weights = np.asarray(terms.class_weights)
    conditional = np.asarray(terms.conditional_entropy)
    comparison = np.asarray(terms.comparison_entropy)
    contribution = np.asarray(terms.per_class)
    per_class = []
    for i, c in enumerate(classes):
        entry = {
            "class": c.item(),
            "n": int(sizes[i]),
            "p": float(weights[i]),
            "conditional_dse": float(conditional[i]),
            "contribution": float(contribution[i]),
        }
        if comparison.shape[-1]:
            entry["comparison_dse"] = float(comparison[i].mean())
        per_class.append(entry)
    report.data["per_class"] = per_class
    report.data["num_classes"] = len(classes)
    if args.estimator == "plugin":
        report.data["dse"] = float(terms.total_entropy)

    report.print(f"DSMI(Z; Y) of {args.features} with {ref_text}: {header}, {len(classes)} classes")
    report.print(
        f"sigma = {_sigma_text(args.sigma, resolved)}, t = {args.t:g}, alpha = {args.alpha:g}, "
        f"estimator = {args.estimator}"
        + (f", {args.repetitions} random subsets per class, seed {args.seed}" if args.estimator == "subsample" else "")
    )
    report.print()
    compare_head = "DSE(Z*) random" if args.estimator == "subsample" else "DSE(Z)"
    rows = []
    for e in per_class:
        other = e.get("comparison_dse", report.data.get("dse"))
        rows.append(
            (e["class"], e["n"], f"{e['p']:.3f}", _fmt(e["conditional_dse"]), _fmt(other), _fmt(e["contribution"]))
        )
    head = ("class", "n_c", "p(c)", "DSE(Z|c)", compare_head, "p(c) x diff")
    report.print("\n".join(_table(head, rows, align=[">"] * 6)))
    report.print()
    report.print(f"DSMI(Z; Y) = {_fmt(value)} {UNITS}")
    report.print(f"time: {timer.seconds:.2f} s (including compilation)")


# ---------------------------------------------------------------- sweep


def cmd_sweep(args, report):
    x = load_features(args.features, report, key=args.key)
    labels = None
    if args.labels:
        labels = load_labels(args.labels, x.shape[0], report, key=args.labels_key, features_path=args.features)
    if args.plot:
        _check_writable(args.plot)
        _require_matplotlib()
    x, labels = subsample_rows([x, labels], args.max_n, args.seed, report)
    header = _describe_input(report, x)
    if args.sigma is None:
        median = _resolve_rule("median", x)
        sigmas = [median * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
        report.note(f"no --sigma given: sweeping the median heuristic ({median:.4g}) times 1/4, 1/2, 1, 2, 4")
    else:
        sigmas = [_resolve_rule(s, x) if isinstance(s, str) else s for s in args.sigma]
    ts = list(args.t)
    settings = report.data["settings"]
    settings.update(sigma=sigmas, t=ts, alpha=args.alpha, base=2)
    grid, seconds = sweep_dse(x, sigmas, ts, args.alpha)
    report.data["dse"] = grid
    report.data["timings"]["dse_s"] = seconds
    report.print(f"Sweep of {args.features}: {header}; {len(sigmas)} sigmas x {len(ts)} times")
    report.print()
    report.print(f"DSE (bits), rows sigma, columns t (upper bound log2 n = {math.log2(x.shape[0]):.4f}):")
    report.print("\n".join(_grid_table(grid, sigmas, ts)))
    report.print(f"time: {seconds:.2f} s (one compiled call, including compilation)")
    dsmi_grid = None
    if labels is not None:
        settings.update(
            estimator=args.estimator, repetitions=args.repetitions, comparison=args.comparison, seed=args.seed
        )
        dsmi_grid, seconds = sweep_dsmi(
            x, labels, sigmas, ts, args.alpha, _estimator_key(args.seed), args.repetitions, args.estimator, args.comparison
        )
        report.data["dsmi"] = dsmi_grid
        report.data["timings"]["dsmi_s"] = seconds
        report.print()
        report.print(f"DSMI(Z; Y) (bits) with labels {args.labels}, rows sigma, columns t:")
        report.print("\n".join(_grid_table(dsmi_grid, sigmas, ts)))
        report.print(f"time: {seconds:.2f} s (one compiled call, including compilation)")
    if args.plot:
        plot_grids(args.plot, sigmas, ts, grid, dsmi_grid, title=os.path.basename(args.features))
        report.data["plot"] = args.plot
        report.print()
        report.print(f"heatmap written to {args.plot}")


def _batch_size(num, per_item_bytes):
    """All at once (vmap) when it fits the memory budget, else chunks of this size (lax.map)."""
    from jaxdse import get_memory_budget

    fit = max(1, get_memory_budget() // max(per_item_bytes, 1))
    return None if fit >= num else int(fit)


def sweep_dse(x, sigmas, ts, alpha):
    """DSE ``[len(sigmas), len(ts)]`` in bits as one compiled call: vmap over sigma, t from one spectrum."""
    import jax
    import jax.numpy as jnp

    import jaxdse
    from jaxdse.diffusion import dense_bytes

    dtype = _float_dtype()
    batch = _batch_size(len(sigmas), dense_bytes(x.shape[0], dtype))

    @jax.jit
    def grid(x, sigmas, ts, alpha):
        one = lambda s: jaxdse.dse(x, sigma=s, t=ts, alpha=alpha)  # noqa: E731
        return jax.lax.map(one, sigmas, batch_size=batch) if batch else jax.vmap(one)(sigmas)

    args = (jnp.asarray(x), jnp.asarray(sigmas, dtype), jnp.asarray(ts, dtype), jnp.asarray(alpha, dtype))
    with Timer() as timer:
        values = np.asarray(_block(grid(*args)))
    return values, timer.seconds


def sweep_dsmi(x, labels, sigmas, ts, alpha, key, repetitions, estimator, comparison="shared"):
    """DSMI ``[len(sigmas), len(ts)]`` in bits as one compiled call: vmap over sigma, all t from one spectrum each.

    The same random subsets serve every grid point (one key), so differences
    across the grid are not sampling noise.
    """
    import jax
    import jax.numpy as jnp

    import jaxdse
    from jaxdse.diffusion import dense_bytes
    from jaxdse.dsmi import pad_size, prepare_labels

    dtype = _float_dtype()
    classes, num_classes = prepare_labels(labels, x.shape[0], reference_discrete=True)
    size = pad_size(int(np.bincount(classes).max()), x.shape[0])
    subsets = num_classes * (1 + (repetitions if estimator == "subsample" else 0))
    per_sigma = dense_bytes(size, dtype) * subsets + (dense_bytes(x.shape[0], dtype) if estimator == "plugin" else 0)
    batch = _batch_size(len(sigmas), per_sigma)

    @jax.jit
    def grid(x, classes, key, sigmas, ts, alpha):
        def one(s):
            return jaxdse.dsmi(
                x,
                classes,
                key=key,
                sigma=s,
                t=ts,
                alpha=alpha,
                num_repetitions=repetitions,
                estimator=estimator,
                comparison=comparison,
                num_classes=num_classes,
                max_class_size=size,
                reference_discrete=True,
            )

        return jax.lax.map(one, sigmas, batch_size=batch) if batch else jax.vmap(one)(sigmas)

    args = (jnp.asarray(x), jnp.asarray(classes), key, jnp.asarray(sigmas, dtype), jnp.asarray(ts, dtype), jnp.asarray(alpha, dtype))
    with Timer() as timer:
        values = np.asarray(_block(grid(*args)))
    return values, timer.seconds


def _grid_table(grid, sigmas, ts):
    head = ["sigma \\ t"] + [f"{t:g}" for t in ts]
    rows = [[f"{s:.4g}"] + [_fmt(float(v)) for v in row] for s, row in zip(sigmas, grid)]
    return _table(head, rows, align=[">"] * len(head))


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path!r}: folder {folder!r} is not writable")


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'jaxdse[data]' (or matplotlib)") from None


def _pyplot():
    _require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grids(path, sigmas, ts, dse_grid, dsmi_grid=None, *, title=""):
    """Heatmaps of DSE (and DSMI) over sigma x t, values written in the cells."""
    plt = _pyplot()
    panels = [("DSE (bits)", dse_grid)] + ([("DSMI(Z; Y) (bits)", dsmi_grid)] if dsmi_grid is not None else [])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(1.0 + 1.1 * len(ts) * len(panels) + 1.5 * len(panels), 1.2 + 0.6 * len(sigmas)),
        squeeze=False,
    )
    for ax, (name, grid) in zip(axes[0], panels):
        grid = np.asarray(grid, float)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", origin="lower")
        ax.set_xticks(range(len(ts)), [f"{t:g}" for t in ts])
        ax.set_yticks(range(len(sigmas)), [f"{s:.3g}" for s in sigmas])
        ax.set_xlabel("diffusion time t")
        ax.set_ylabel("sigma")
        ax.set_title(f"{name} {title}".strip(), fontsize=10)
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(
                    j, i, _fmt(float(grid[i, j]), 2), ha="center", va="center", fontsize=8,
                    color="black" if grid[i, j] > middle else "white",
                )
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- compare


def cmd_compare(args, report):
    x = load_features(args.features, report, key=args.key)
    labels = load_labels(args.labels, x.shape[0], report, key=args.labels_key, features_path=args.features)
    x, labels = subsample_rows([x, labels], args.max_n, args.seed, report)
    header = _describe_input(report, x)
    resolved = _resolve_rule(args.sigma, x)
    settings = report.data["settings"]
    settings.update(
        sigma=args.sigma,
        t=args.t,
        alpha=args.alpha,
        estimator=args.estimator,
        repetitions=args.repetitions,
        seed=args.seed,
        bins=args.bins,
        ksg_k=args.ksg_k,
        mine_epochs=args.mine_epochs,
        repeat=args.repeat,
    )
    if resolved is not None:
        settings["sigma_value"] = resolved
    names = list(dict.fromkeys(args.estimators))
    if "reference" in names and not _has_reference_package():
        names.remove("reference")
        if args.estimators != list(ESTIMATORS):
            raise ImportError("the 'reference' estimator needs the dse-dsmi package: pip install dse-dsmi")
        report.note("dse-dsmi (the authors' package) is not installed: its row is left out")
    jobs = _compare_jobs(x, labels, args, names, report, resolved)
    rows = []
    for job in progress(jobs, desc="estimators", disable=False):
        first, steady, values = _timed(job["run"], args.repeat)
        for quantity, value in values.items():
            report.data[quantity] = value
        report.data["timings"][f"{job['name']}_s"] = first
        if steady is not None:
            report.data["timings"][f"{job['name']}_steady_s"] = steady
        for label, quantity in job["rows"]:
            rows.append(
                (
                    label,
                    _fmt(values[quantity]),
                    f"{first:.2f}" + (f" / {steady:.2f}" if steady is not None else ""),
                    job["note"],
                )
            )
    report.print(f"Estimators on {args.features} with labels {args.labels}: {header}, {len(np.unique(labels))} classes")
    report.print(f"sigma = {_sigma_text(args.sigma, resolved)}, t = {args.t:g}, seed {args.seed}; values in {UNITS}")
    report.print()
    time_head = "time (s)" if args.repeat == 1 else "time (s) first / steady"
    report.print("\n".join(_table(("estimate", UNITS, time_head, "notes"), rows, align=["<", ">", ">", "<"])))
    report.print()
    report.print(
        "Entropies are bounded by log2 n = "
        f"{math.log2(x.shape[0]):.4f} bits. Times include compilation"
        + (" (first) and the best later run (steady)." if args.repeat > 1 else "; use --repeat 2 for steady-state times.")
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


def _compare_jobs(x, labels, args, names, report, resolved_sigma):
    import jax

    import jaxdse
    from jaxdse import baselines

    explicit = args.estimators != list(ESTIMATORS)

    def skip(name, reason):
        # Asked for by name: an error; part of the default set: left out with a note.
        if explicit:
            raise UsageError(f"{name}: {reason}")
        report.note(f"{name} left out: {reason}")

    key = _estimator_key(args.seed)
    mi = dict(key=key, num_repetitions=args.repetitions, estimator=args.estimator, comparison=args.comparison)
    kernel = dict(sigma=args.sigma, t=args.t, alpha=args.alpha)
    jobs = []

    def add(name, rows, note, run):
        jobs.append(dict(name=name, rows=rows, note=note, run=run))

    if "dse" in names:
        add("dse", [("DSE(Z)", "dse")], "jaxdse, diffusion spectral entropy",
            lambda: {"dse": float(_block(jaxdse.dse(x, **kernel)))})
    if "cse" in names:
        add("cse", [("CSE(Z)", "cse")], f"classic Shannon entropy, {args.bins} bins per feature",
            lambda: {"cse": float(_block(baselines.cse(x, num_bins_per_dim=args.bins)))})
    if "dsmi" in names:
        add("dsmi", [("DSMI(Z; Y)", "dsmi")], f"jaxdse, {args.estimator} estimator",
            lambda: {"dsmi": float(_block(jaxdse.dsmi(x, labels, reference_discrete=True, **kernel, **mi)))})
    if "csmi" in names:
        add("csmi", [("CSMI(Z; Y)", "csmi")], "classic Shannon MI, same estimator as DSMI",
            lambda: {"csmi": float(_block(baselines.csmi(x, labels, num_bins_per_dim=args.bins,
                                                         reference_discrete=True, **mi)))})
    if "ksg" in names and args.ksg_k >= x.shape[0]:
        skip("ksg", f"--ksg-k {args.ksg_k} needs more than {args.ksg_k} rows, got n = {x.shape[0]}")
    elif "ksg" in names:
        add("ksg", [("KSG I(Z; Y)", "ksg")], f"k = {args.ksg_k}, labels as a numeric column",
            lambda: {"ksg": float(_block(baselines.ksg(x, labels.astype(x.dtype), k=args.ksg_k)))})
    n_train = x.shape[0] - int(round(0.2 * x.shape[0]))
    if "mine" in names and (n_train < 2 or x.shape[0] - n_train < 2):
        skip("mine", f"MINE holds out 20% of the rows for its estimate and needs 2 there; n = {x.shape[0]} is too few")
    elif "mine" in names:
        classes, inverse = np.unique(labels, return_inverse=True)
        onehot = np.eye(len(classes), dtype=x.dtype)[inverse]
        batch = min(500, n_train)
        final = min(10, args.mine_epochs)
        add("mine", [("MINE I(Z; Y)", "mine")], f"{args.mine_epochs} epochs, batch {batch}, one-hot labels",
            lambda: {"mine": float(_block(baselines.mine(x, onehot, key=jax.random.fold_in(key, 3),
                                                         epochs=args.mine_epochs, batch_size=batch,
                                                         final_epochs=final).mi_bits))})
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
                    z, labels.reshape(-1, 1), reference_discrete=True, gaussian_kernel_sigma=sigma, t=int(args.t),
                    num_repetitions=args.repetitions, random_seed=args.seed,
                )
            return {"reference_dse": float(h), "reference_dsmi": float(m)}

        add("reference", [("DSE(Z) dse-dsmi", "reference_dse"), ("DSMI(Z; Y) dse-dsmi", "reference_dsmi")],
            note, reference)
    return jobs


# ---------------------------------------------------------------- demo

DEMO_EPOCHS = 15


def cmd_demo(args, report):
    """Train the small CNN of :mod:`jaxdse.nn` on the digits; DSE(Z) and DSMI(Z; Y) per epoch."""
    import jax

    from jaxdse import nn
    from jaxdse.data import load_digits

    _require_matplotlib()
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create --out folder {out!r}: {_one_line(err)}") from None
    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    x, y = load_digits()
    if args.subset is not None and args.subset < len(x):
        idx = np.sort(np.asarray(jax.random.choice(jax.random.PRNGKey(args.seed), len(x), (args.subset,), replace=False)))
        x, y = x[idx], y[idx]
        report.note(f"using {args.subset} of the 1797 digits (--subset, seed {args.seed})")
    key = jax.random.key(args.seed)
    split_key, fit_key = jax.random.split(key)
    (x_train, y_train), (x_test, y_test) = nn.train_test_split(nn.as_images(x), y, key=split_key)
    sigma, t = 10.0, 1.0
    report.data["settings"].update(
        epochs=epochs, seed=args.seed, sigma=sigma, t=t, repetitions=5, model="jaxdse.nn.CNN (width 16, depth 2, "
        "64 penultimate features)", optimizer="adam 1e-3, batch 64", n_train=len(x_train), n_test=len(x_test),
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
    head = ("epoch", "train acc", "test acc", "DSE(Z)", "DSMI(Z; Y)", "DSMI(Z; X)", "time (s)")
    widths = [5, 9, 8, 7, 10, 10, 8]
    report.print("  ".join(f"{h:>{w}}" for h, w in zip(head, widths)))
    report.print("  ".join("-" * w for w in widths))

    def show(epoch, row):
        cells = (
            epoch, f"{row['train_accuracy']:.3f}", f"{row['test_accuracy']:.3f}", _fmt(row["dse"], 3),
            _fmt(row["dsmi_y"], 3), _fmt(row["dsmi_x"], 3), f"{row['seconds']:.1f}",
        )
        report.print("  ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths)))

    with Timer() as timer:
        history = nn.fit(
            x_train, y_train, x_test, y_test, epochs=epochs, key=fit_key, sigma=sigma, t=t, callback=show,
            progress="training" if sys.stderr.isatty() else False,
        )
    report.data["timings"]["total_s"] = timer.seconds
    names = {
        "epoch": "epoch", "train_accuracy": "train_accuracy", "accuracy": "test_accuracy", "dse": "dse",
        "dsmi": "dsmi_y", "dsmi_x": "dsmi_x", "seconds": "seconds",
    }
    curves = {name: [float(v) for v in history[key]] for name, key in names.items()}
    curves["epoch"] = [int(e) for e in curves["epoch"]]
    report.data.update(curves)
    plot_path = os.path.join(out, "demo_curves.png")
    plot_demo(plot_path, curves, n_test=len(x_test))
    data_path = os.path.join(out, "demo_history.json")
    with open(data_path, "w") as handle:
        json.dump(_jsonable(dict(curves, units=UNITS, settings=report.data["settings"])), handle, indent=2)
    report.data["plot"] = plot_path
    report.data["history"] = data_path
    report.print()
    report.print(
        "Epoch 0 is before training. DSE(Z) and DSMI(Z; Y) grow as the network learns, as in the paper's "
        "training curves (arXiv 2312.04823)."
    )
    report.print(f"curves: {plot_path}; numbers: {data_path}; total {timer.seconds:.1f} s")


def plot_demo(path, curves, *, n_test):
    """Accuracy and DSE/DSMI against epoch, side by side."""
    plt = _pyplot()
    epochs = curves["epoch"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, curves["train_accuracy"], "o-", label="train")
    left.plot(epochs, curves["accuracy"], "s-", label="test")
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy")
    left.set_ylim(0, 1)
    left.legend()
    left.set_title("small CNN on the 8x8 digits")
    right.plot(epochs, curves["dse"], "o-", label="DSE(Z)")
    right.plot(epochs, curves["dsmi"], "s-", label="DSMI(Z; Y) labels")
    right.plot(epochs, curves["dsmi_x"], "^-", label="DSMI(Z; X) input clusters")
    right.set_xlabel("epoch")
    right.set_ylabel("bits")
    right.legend(fontsize=8)
    right.set_title(f"penultimate layer Z on {n_test} test digits (DSE <= log2 n = {math.log2(n_test):.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COMMANDS = {"dse": cmd_dse, "dsmi": cmd_dsmi, "sweep": cmd_sweep, "compare": cmd_compare, "demo": cmd_demo}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``jaxdse`` argument parser: subcommands, their options and the checks on option values."""

from __future__ import annotations

import argparse
import math

from jaxdse.cli.report import UsageError
from jaxdse.cli.solver import EXACT_SOLVERS, SOLVERS

RULES = ("median", "sqrt_dim", "knn", "knn:K")
ESTIMATORS = ("dse", "cse", "dsmi", "csmi", "ksg", "mine", "reference")
DSMI_DESCRIPTION = (
    "DSMI(Z; Y) in bits between the rows of FEATURES and class labels (--labels) "
    "or a continuous reference (--reference), e.g. the flattened inputs."
)
COMPARE_DESCRIPTION = (
    "Entropy and mutual information estimates for FEATURES and --labels from several "
    "estimators, in bits, each with its wall time."
)
COMMANDS = ("dse", "dsmi", "sweep", "layers", "compare", "demo")


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


def _number(text, expected, ok):
    """``float(text)`` when ``ok`` of it holds, else an ArgumentTypeError saying what was expected."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_float(text, expected="a positive number"):
    return _number(text, expected, lambda v: math.isfinite(v) and v > 0)


def _alpha(text):
    return _number(text, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)


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


def _open_unit(text):
    return _number(text, "a number in (0, 1)", lambda v: 0.0 < v < 1.0)


def _time(text):
    """A diffusion time: a positive number or 'auto' (the knee of DSE against t)."""
    if text.strip() == "auto":
        return "auto"
    return _positive_float(text, "a positive number or 'auto'")


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


def build_parser(version: str = "") -> argparse.ArgumentParser:
    """The parser of every subcommand; mistakes raise :class:`UsageError` (one line)."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    group.add_argument("--device", choices=("cpu", "gpu"), help="where to compute (default: jax's default device)")
    group.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    group.add_argument(
        "--seed", type=_int_at_least(0), default=0, help="seed for subsampling and random subsets (default 0)"
    )
    group.add_argument("--debug", action="store_true", help="show the Python traceback on errors")

    data = _Parser(add_help=False)
    group = data.add_argument_group("input options")
    group.add_argument("--array", metavar="NAME", help="the array's name inside an .npz file")
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
        epilog="Start with 'jaxdse demo'. Inputs: .npy, .npz (--array NAME), .csv/.tsv/.txt (header optional); "
        "arrays of rank > 2 (e.g. images [n, h, w, c]) are flattened to [n, h*w*c].",
    )
    parser.add_argument("--version", action="version", version=f"jaxdse {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _command(
        sub, "dse", [kernel, data, common], "points [n, d] (.npy, .npz, .csv, .tsv, .txt)",
        help="diffusion spectral entropy of the rows of a file",
        description="Diffusion spectral entropy DSE(X) in bits of the n rows (points) of FEATURES [n, d].",
    )  # fmt: skip
    p.add_argument(
        "--t", type=_time, default=1.0, help="diffusion time t > 0, or 'auto': the knee of DSE against t (default 1)"
    )
    _add_solver(p, SOLVERS)
    _add_slq_options(p)
    p.add_argument("--num-landmarks", type=_int_at_least(2), help="--solver nystrom: landmarks (default 1024)")
    p.add_argument(
        "--eigenvalue-count",
        action="store_true",
        help="also count the diffusion eigenvalues with |lambda|^t above --threshold (manylatents' eigenvalue_count)",
    )
    p.add_argument(
        "--threshold", type=_open_unit, default=None, help="--eigenvalue-count: the floor, in (0, 1) (default 1e-6)"
    )

    p = _command(
        sub, "dsmi", [kernel, mi, data, common], "representation Z [n, d]",
        help="diffusion spectral mutual information with labels or a reference",
        description=DSMI_DESCRIPTION,
    )  # fmt: skip
    _add_times(
        p,
        [1.0],
        "T[,T...]",
        "diffusion time t > 0, or a comma-separated list: one DSMI per t from the same spectra and subsets, "
        "or 'auto': the knee of DSE(Z) against t (default 1)",
        item=_time,
    )
    _add_solver(p, EXACT_SOLVERS)
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--labels", metavar="FILE", help="integer class labels [n] (or one-hot [n, C])")
    ref.add_argument("--reference", metavar="FILE", help="continuous reference [n] (binned) or [n, d'] (clustered)")
    p.add_argument("--labels-array", metavar="NAME", help="the array's name inside an .npz labels or reference file")
    p.add_argument(
        "--num-clusters", type=_int_at_least(2), default=10, help="bins or clusters for --reference (default 10)"
    )
    p.add_argument(
        "--cluster-method",
        choices=("spectral", "diffusion"),
        default="spectral",
        help="clustering of an [n, d'] reference: scikit-learn spectral clustering as the reference "
        "package (default), or pure-JAX diffusion k-means",
    )

    p = _command(
        sub, "sweep", [mi, data, common], "points [n, d]",
        help="DSE (and DSMI) over a grid of sigma and t, as one compiled computation",
        description="DSE (and DSMI with --labels) in bits over every (sigma, t) pair, computed as one "
        "compiled call (jaxdse.mi.sweep.sweep): one eigendecomposition per sigma serves all t.",
    )  # fmt: skip
    p.add_argument("--labels", metavar="FILE", help="integer class labels [n]: also sweep DSMI")
    p.add_argument("--labels-array", metavar="NAME", help="the array's name inside an .npz labels file")
    p.add_argument(
        "--sigma",
        type=_list_of(_sweep_sigma, "sigmas"),
        default=None,
        metavar="LIST",
        help="comma-separated bandwidths; 'median' and 'sqrt_dim' are resolved to numbers "
        "(default: the median heuristic times 1/4, 1/2, 1, 2, 4)",
    )
    _add_times(p, [1.0, 2.0, 5.0, 10.0], "LIST", "comma-separated diffusion times (default 1,2,5,10)")
    p.add_argument("--alpha", type=_alpha, default=0.0, help="anisotropy in [0, 1] (default 0)")
    _add_solver(p, EXACT_SOLVERS)
    p.add_argument(
        "--plot", metavar="FILE", help="write a heatmap of the grid: .png, .pdf, .svg, ... (needs matplotlib)"
    )

    p = _command(
        sub, "layers", [kernel, common], "hidden states: .npz (one array per layer, or one stack) or .npy [L, B, T, D]",
        help="DSE (and DSMI) of every layer of saved hidden states, in one compiled call",
        description="DSE in bits of every layer of hidden states saved from any framework: an .npz with one "
        "array per layer ([B, T, D] or [N, D], in natural order of their names) or one stacked array "
        "([L, B, T, D] or [L, N, D]; --array NAME). Transformer-Dispersion's settings: --sigma 1 --normalize l2.",
    )  # fmt: skip
    p.add_argument("--array", metavar="NAME", help="the stacked array's name inside the .npz file")
    p.add_argument(
        "--mask",
        metavar="NAME|FILE",
        help="attention mask [B, T] (0/1 or bool): an array of the hidden-states .npz, or a file",
    )
    p.add_argument(
        "--granularity",
        choices=("tokens", "prompt", "dataset"),
        default="tokens",
        help="tokens: all kept tokens of a layer are one set (default); prompt: each sequence's tokens; "
        "dataset: one pooled vector per sequence",
    )
    p.add_argument(
        "--pool",
        choices=("mean", "last", "first"),
        default="mean",
        help="--granularity dataset: pooling (default mean)",
    )
    p.add_argument(
        "--normalize",
        choices=("none", "l2", "center", "center+l2"),
        default="none",
        help="rows to unit norm (l2), centred, or both, before the kernel (default none)",
    )
    p.add_argument("--t", type=_positive_float, default=1.0, help="diffusion time t > 0 (default 1)")
    p.add_argument(
        "--labels",
        metavar="NAME|FILE",
        help="labels for per-layer DSMI(Z; Y): [B] (dataset) or [B, T] / [N] (tokens); an array of the .npz, or a file",
    )
    p.add_argument(
        "--estimator", choices=("subsample", "plugin"), default="subsample", help="DSMI estimator (default subsample)"
    )
    _add_solver(p, ("exact", "eigh", "slq"))
    _add_slq_options(p)
    p.add_argument(
        "--plot", metavar="FILE", help="write the layer profile against depth: .png, .pdf, .svg, ... (needs matplotlib)"
    )

    p = _command(
        sub, "compare", [kernel, mi, data, common], "representation Z [n, d]",
        help="DSE/DSMI next to CSE/CSMI, KSG, MINE and the reference package, with timings",
        description=COMPARE_DESCRIPTION,
    )  # fmt: skip
    p.add_argument("--labels", metavar="FILE", required=True, help="integer class labels [n]")
    p.add_argument("--t", type=_positive_float, default=1.0, help="diffusion time t > 0 (default 1)")
    _add_solver(p, EXACT_SOLVERS)
    p.add_argument("--labels-array", metavar="NAME", help="the array's name inside an .npz labels file")
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


def _command(sub, name, parents, features_help, **text):
    """A subcommand whose first argument is the FEATURES file."""
    p = sub.add_parser(name, parents=parents, **text)
    p.add_argument("features", metavar="FEATURES", help=features_help)
    return p


def _add_times(p, default, metavar, help, item=_positive_float):
    p.add_argument("--t", type=_list_of(item, "diffusion times"), default=default, metavar=metavar, help=help)


def _add_slq_options(p):
    p.add_argument(
        "--num-probes", type=_int_at_least(1), help="--solver slq: random probe vectors (default the library's)"
    )
    p.add_argument(
        "--num-matvecs", type=_int_at_least(1), help="--solver slq: Lanczos steps per probe (default the library's)"
    )


def _add_solver(p, choices):
    p.add_argument(
        "--solver",
        choices=choices,
        default="exact",
        help="eigenvalues: exact (default), eigh (a full symmetric eigendecomposition)"
        + (", slq (matrix-free stochastic Lanczos estimate with a standard error)" if "slq" in choices else "")
        + (", or nystrom (low-rank landmark estimate with an error indicator)" if "nystrom" in choices else ""),
    )

"""Helpers shared by the example scripts: arguments, data, progress, outputs.

The timer, the JSON cleaning, the progress bar and the figures come from the
library (:mod:`jaxdse.io._report`, :mod:`jaxdse.io.plotting`), which the command line
uses too; this module only adapts them to the examples' folders and names.

Imported before numpy/jax by each example: on a small machine shared by several
processes, multi-threaded BLAS (used by the CPU eigensolvers) oversubscribes the
cores and can make a 400 x 400 eigendecomposition a hundred times slower, so
one BLAS thread is the default here (override by setting the variables).
Compiled programs are cached on disk between runs (see below).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Most of a short run is XLA compilation: JAX's persistent compilation cache keeps
# the compiled programs on disk, so a second run (same script, settings and JAX)
# skips it. Set JAX_COMPILATION_CACHE_DIR to another folder, or to "" to turn it off.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "jaxdse-examples"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from jaxdse.io import plotting  # noqa: E402
from jaxdse.io._report import Timer, jsonable  # noqa: E402, F401  (Timer: used by the examples)
from jaxdse.io._report import progress as _progress  # noqa: E402


def parser(description: str, *, training: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the options every example has (and ``--data``, ``--epochs`` with ``training``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny settings that finish in seconds (smoke test)")
    p.add_argument("--out", type=Path, default=Path("example_outputs"), help="folder for the PNG figures and the JSON")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    if training:
        add_data_argument(p)
        p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the example's)")
    return p


def add_data_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=".npz with images and integer labels (keys x/y or images/labels); default: the scikit-learn digits",
    )


def load_images(path=None):
    """``(images [n, H, W, C] in [0, 1], labels [n] int32, name)`` from an .npz or the digits."""
    from jaxdse import zoo

    if path is None:
        from jaxdse.data import load_digits

        x, y = load_digits()
        name = "sklearn digits (8x8)"
    else:
        with np.load(path) as f:
            keys = set(f.files)
            for xk, yk in (("x", "y"), ("images", "labels")):
                if xk in keys and yk in keys:
                    x, y = f[xk], f[yk]
                    break
            else:
                raise SystemExit(f"--data {path}: expected arrays x/y or images/labels, found {sorted(keys)}")
        name = str(path)
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        raise SystemExit(f"labels must be integers, got {y.dtype}")
    _, y = np.unique(y, return_inverse=True)
    return zoo.as_images(x), y.astype(np.int32), name


def counted(fn, counter: list):
    """``fn`` that appends to ``counter`` each time it runs: under a jit, each trace (one per compilation)."""

    def wrapper(*args, **kwargs):
        counter.append(1)
        return fn(*args, **kwargs)

    return wrapper


def progress(total: int, desc: str, disable: bool = False):
    """A progress bar on stderr with ``update``/``set_postfix``/``close`` (silent without tqdm)."""
    return _progress(total=total, desc=desc, disable=disable)


def environment() -> dict:
    import jax

    import jaxdse

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxdse": jaxdse.__version__,
        "backend": jax.default_backend(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }


def save_json(out: Path, name: str, payload: dict) -> Path:
    """Write ``payload`` (numbers, arrays) as JSON; non-finite numbers become null."""
    out.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("environment", environment())
    path = out / name
    path.write_text(json.dumps(jsonable(payload), indent=1, allow_nan=False))
    return path


def save_outputs(fig, out: Path, stem: str, payload: dict):
    """Write ``out/stem.png`` (closing ``fig``) and ``out/stem.json``; returns both paths."""
    return save_figure(fig, out, f"{stem}.png"), save_json(out, f"{stem}.json", payload)


def pyplot():
    return plotting.pyplot(**{"figure.dpi": 90, "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 7})


def save_figure(fig, out: Path, name: str) -> Path:
    """Write ``fig`` to ``out/name`` and close it."""
    out.mkdir(parents=True, exist_ok=True)
    return plotting.save_figure(fig, out / name, dpi=90)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either is constant."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])

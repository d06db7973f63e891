"""Where a results file came from: the commit, whether the tree had changes, the date and the machine.

Every ``bench_*.py`` puts :func:`stamp` at the top of the results file it writes,
so that a table can always be traced to the code that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A benchmark measures this checkout's code, whichever jaxdse is installed: every
# bench_*.py imports this module before jaxdse, so the checkout comes first.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def check_checkout() -> None:
    """Exit unless ``jaxdse`` is imported from this checkout: a copy installed elsewhere
    (a wheel built from an older tree) would run under this checkout's commit. Importing
    this module first puts the checkout first on the path, so this fails only when jaxdse
    was imported before it."""
    import jaxdse

    used = Path(jaxdse.__file__).resolve().parent
    if used != ROOT / "jaxdse":
        raise SystemExit(
            f"the jaxdse imported ({used}) is not this checkout's ({ROOT / 'jaxdse'}), so its results would "
            "carry the wrong commit: install the checkout with `pip install -e .` or put it first on PYTHONPATH"
        )


def commit() -> str:
    """The checkout's commit (short hash), with ``+changes`` when the tracked files differ from it.

    Exits if ``jaxdse`` is not imported from this checkout (:func:`check_checkout`).
    """
    check_checkout()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" +changes" if dirty else "")


def stamp() -> str:
    """One markdown line: commit, UTC date, command, machine and versions."""
    from importlib.metadata import version

    import jax
    import numpy as np

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = f"jax {jax.__version__}, matfree {version('matfree')}, numpy {np.__version__}"
    return (
        f"Produced by commit {commit()} on {date} with `python {' '.join(sys.argv)}`; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, jax backend {jax.default_backend()}, {versions}."
    )


def stamped(text: str) -> str:
    """``text`` (a results section) with :func:`stamp` after its heading line."""
    head, _, rest = text.partition("\n")
    return f"{head}\n\n{stamp()}\n{rest}"

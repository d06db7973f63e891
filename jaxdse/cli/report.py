"""What a command prints: tables or one JSON object, notes, one-line errors, checked output paths."""

from __future__ import annotations

import json
import math
import os
import sys

from jaxdse.io._report import jsonable, non_finite

UNITS = "bits"
# The values, listed first in the JSON output.
VALUE_KEYS = ("dse", "dse_stderr", "dsmi", "cse", "csmi", "ksg", "mine", "reference_dse", "reference_dsmi", "accuracy")


class UsageError(Exception):
    """A problem the user can fix: reported as one line, exit status 2."""


def one_line(err) -> str:
    """The first line of an exception's message (its type name when empty)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class Report:
    """Collects the values of one run; prints tables, or one JSON object with ``--json``."""

    def __init__(self, args, device, version):
        import jax

        self.json = args.json
        self.data = {
            "command": args.command,
            "jaxdse_version": version,
            "units": UNITS,
            "device": f"{device.platform}:{device.id}",
            "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
            "settings": {},
            "timings": {},
            "notes": [],
        }

    @property
    def settings(self):
        return self.data["settings"]

    @property
    def timings(self):
        return self.data["timings"]

    def note(self, text):
        """A remark for the user: on stderr at once, and in the JSON's ``notes``."""
        self.data["notes"].append(text)
        print(f"note: {text}", file=sys.stderr)

    def value(self, name, value, what=None):
        """Record a computed value; NaN or an infinity is an error (exit status 2), never ``null``."""
        bad = non_finite(value, name)
        if bad:
            raise UsageError(
                f"{what or name} could not be computed: the result is NaN or infinite ({', '.join(bad[:3])}); "
                "check sigma against the data's scale, or rerun with --x64"
            )
        self.data[name] = value
        return value

    def print(self, text=""):
        """A line of the readable output (printed at once; nothing with ``--json``)."""
        if not self.json:
            print(text, flush=True)

    def emit(self):
        """With ``--json``: the one JSON object on stdout, its main keys first."""
        if not self.json:
            return
        bad = non_finite(self.data)
        if bad:
            raise UsageError(f"{', '.join(bad[:3])} could not be computed: the result is NaN or infinite")
        first = ("command", "input", "n", "d") + VALUE_KEYS + ("units", "settings", "device", "dtype", "timings")
        ordered = {k: self.data[k] for k in first if k in self.data}
        ordered.update((k, v) for k, v in self.data.items() if k not in ordered)
        sys.stdout.write(json.dumps(jsonable(ordered), indent=2, allow_nan=False) + "\n")
        sys.stdout.flush()


def fmt(value, digits=4):
    """A number with ``digits`` decimals (``n/a`` for a missing or non-finite one)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def table(header, rows, align=None):
    """Lines of a plain-text table with a rule under the header."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    out = []
    for k, row in enumerate(cells):
        out.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def grid_table(grid, sigmas, ts, sigma_labels=None):
    """A sigma x t grid as table lines (rows sigma, columns t)."""
    labels = sigma_labels or [f"{s:.4g}" for s in sigmas]
    head = ["sigma \\ t"] + [f"{t:g}" for t in ts]
    rows = [[label] + [fmt(float(v)) for v in row] for label, row in zip(labels, grid)]
    return table(head, rows, align=[">"] * len(head))


# ---------------------------------------------------------------- output paths


def _name_max(folder):
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output_file(path, flag, formats):
    """Check, before anything is computed, that ``path`` can be written as one of ``formats``.

    Refused with a :class:`UsageError`: an empty name, a folder (or a name ending
    in a separator), a name without a stem or with an extension not in
    ``formats``, a name longer than the file system allows, a folder that does
    not exist, and a place that cannot be written (tried by creating the file
    and removing it again; an existing file is opened for appending, not changed).
    """
    text = os.fspath(path)
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    if not text:
        raise UsageError(f"{flag}: the file name is empty")
    if text.endswith(seps) or os.path.isdir(text):
        raise UsageError(f"{flag} {text!r} is a folder; give a file name, e.g. {os.path.join(text, 'sweep.png')!r}")
    base = os.path.basename(text)
    stem, ext = os.path.splitext(base)
    if not stem or not ext:
        raise UsageError(f"{flag} {text!r} needs a file name with an extension: one of {', '.join(formats)}")
    if ext.lower() not in formats:
        raise UsageError(f"{flag} {text!r}: unknown extension {ext!r}; use one of {', '.join(formats)}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {flag} {text!r}: folder {folder!r} does not exist")
    if len(os.fsencode(base)) > _name_max(folder):
        raise UsageError(
            f"{flag}: the file name is too long ({len(os.fsencode(base))} bytes, at most {_name_max(folder)})"
        )
    _probe(text, flag, new=not os.path.exists(text))


def check_output_folder(path, flag):
    """Create the folder ``path`` if needed and check that files can be written in it."""
    text = os.fspath(path)
    if not text:
        raise UsageError(f"{flag}: the folder name is empty")
    if os.path.exists(text) and not os.path.isdir(text):
        raise UsageError(f"{flag} {text!r} exists and is not a folder")
    for part in text.split(os.sep):
        if len(os.fsencode(part)) > 255:
            raise UsageError(f"{flag}: a folder name is too long ({len(os.fsencode(part))} bytes, at most 255)")
    try:
        os.makedirs(text, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {flag} folder {text!r}: {err.strerror or one_line(err)}") from None
    _probe(os.path.join(text, ".jaxdse-write-check"), flag, new=True)


def _probe(path, flag, *, new):
    try:
        with open(path, "xb" if new else "ab"):
            pass
        if new:
            os.remove(path)
    except OSError as err:
        raise UsageError(f"cannot write {flag} {path!r}: {err.strerror or one_line(err)}") from None

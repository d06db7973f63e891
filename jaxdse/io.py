"""Reading arrays from files: .npy, .npz, .csv/.tsv/.txt (numeric, header optional).

Used by the ``jaxdse`` command line; importable on its own. Every problem a user
can cause (a missing file, an unknown extension, a non-numeric cell, an archive
with several arrays and no name) raises :class:`InputError` with one line that
names the file and says what to do.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt")


class InputError(ValueError):
    """A file could not be turned into the array the caller asked for."""


def load_array(path, *, key: str | None = None, name: str = "input"):
    """The array stored in ``path``.

    * ``.npy``: the array (no pickled objects).
    * ``.npz``: the array called ``key``; without ``key`` the archive must hold
      exactly one array.
    * ``.csv`` (comma), ``.tsv`` (tab), ``.txt`` (whitespace): a numeric table,
      one sample per row. A first line that is not numeric is read as a header
      and skipped. A table with one column gives a ``[n]`` array.

    Args:
      path: file name.
      key: array name inside an ``.npz`` archive.
      name: what the file is for (``"input"``, ``"labels"``), used in messages.

    Returns:
      A numpy array (any rank; the caller decides what it accepts).

    Raises:
      InputError: one line naming the file and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{name} file {path!r} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{name} file {path!r} is a directory, not a file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise InputError(
            f"{name} file {path!r}: unknown extension {ext or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    if key is not None and ext != ".npz":
        raise InputError(f"--key names an array inside an .npz archive, but {name} file {path!r} is {ext}")
    try:
        if ext == ".npy":
            return _load_npy(path, name)
        if ext == ".npz":
            return _load_npz(path, key, name)
        return _load_table(path, ext, name)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read {name} file {path!r}: {_one_line(err)}") from err


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _load_npy(path, name):
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise InputError(f"cannot read {name} file {path!r}: not a NumPy .npy file (no .npy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise InputError(
                f"{name} file {path!r} holds Python objects (pickled), not a numeric array; save it with "
                "np.save(path, np.asarray(values, dtype=float))"
            ) from err
        raise
    if isinstance(arr, np.lib.npyio.NpzFile):  # a .npz saved under a .npy name
        with arr:
            return _pick_from_npz(arr, None, path, name)
    return np.asarray(arr)


def _load_npz(path, key, name):
    with np.load(path, allow_pickle=False) as archive:
        if not isinstance(archive, np.lib.npyio.NpzFile):
            return np.asarray(archive)
        return _pick_from_npz(archive, key, path, name)


def _pick_from_npz(archive, key, path, name):
    names = list(archive.files)
    if not names:
        raise InputError(f"{name} file {path!r} is an empty .npz archive")
    if key is None:
        if len(names) > 1:
            raise InputError(
                f"{name} file {path!r} holds {len(names)} arrays ({', '.join(names)}); choose one with --key NAME"
            )
        key = names[0]
    if key not in names:
        raise InputError(f"{name} file {path!r} has no array {key!r}; it holds: {', '.join(names)}")
    try:
        return np.asarray(archive[key])
    except ValueError as err:
        raise InputError(f"array {key!r} in {name} file {path!r} holds Python objects (pickled), not numbers") from err


def _load_table(path, ext, name):
    delimiter = {".csv": ",", ".tsv": "\t"}.get(ext)
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    rows = []
    first_data = None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in (line.split(delimiter) if delimiter else line.split())]
        values = _parse_row(cells)
        if values is None:
            if first_data is None and not rows:
                first_data = False  # a header line, skipped
                continue
            bad = next(c for c in cells if _parse_cell(c) is None)
            raise InputError(f"{name} file {path!r}, line {number}: {bad!r} is not a number")
        if rows and len(values) != len(rows[0]):
            raise InputError(
                f"{name} file {path!r}, line {number}: {len(values)} columns, but earlier rows have {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise InputError(f"{name} file {path!r} has no numeric rows")
    arr = np.asarray(rows, dtype=np.float64)
    if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**53):
        arr = arr.astype(np.int64)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def _parse_cell(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _parse_row(cells):
    values = [_parse_cell(c) for c in cells]
    return None if any(v is None for v in values) else values

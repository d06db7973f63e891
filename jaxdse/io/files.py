"""Reading points and labels from files: .npy, .npz, .csv/.tsv/.txt (header optional).

:func:`load_array` returns what a file holds. :func:`load_points`,
:func:`load_labels` and :func:`load_reference` turn it into what DSE and DSMI
take: points ``[n, d]`` (higher rank flattened), integer class labels ``[n]``
(text, boolean, whole-number float and one-hot labels converted) and a
continuous reference ``[n]`` or ``[n, d']``. They return a :class:`Loaded`
whose ``notes`` say what was converted, so a caller can tell its user.

Every problem a user can cause (a missing file, an unknown extension, a
non-numeric cell, an archive with several arrays and no name, NaN values, a
label count that does not match) raises :class:`InputError` (a ``ValueError``)
with one line that names the file and says what to do.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.npz")
>>> np.savez(path, features=np.zeros((4, 2, 3)), labels=np.arange(4) % 2)
>>> load_points(path, array="features").values.shape
(4, 6)
"""

from __future__ import annotations

import os
import zipfile
from typing import NamedTuple

import numpy as np

FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt")
"""The file extensions :func:`load_array` reads."""


class InputError(ValueError):
    """A file could not be turned into the array the caller asked for."""


class Loaded(NamedTuple):
    """An array read from a file, after conversion.

    Attributes:
      values: the converted numpy array.
      shape: the shape stored in the file, before conversion.
      notes: one sentence per conversion made (flattening, text labels mapped
        to integers, ...); empty when the file held exactly what was asked for.
    """

    values: np.ndarray
    shape: tuple
    notes: tuple


def load_array(path, *, array: str | None = None, name: str = "input", text: bool = False):
    """The array stored in ``path``.

    * ``.npy``: the array (no pickled objects).
    * ``.npz``: the member called ``array``; without ``array`` the archive must
      hold exactly one. Object arrays and pickles are refused, never unpickled.
    * ``.csv`` (comma), ``.tsv`` (tab), ``.txt`` (whitespace): a numeric table,
      one sample per row. A first line that is not numeric is read as a header
      and skipped. A table with one column gives a ``[n]`` array. With
      ``text=True`` a one-column table may hold words (class names); its first
      line is read as a header when that word occurs nowhere else in the column.

    Args:
      path: file name (``str``, ``bytes`` or ``os.PathLike``).
      array: member name inside an ``.npz`` archive.
      name: what the file is for (``"features"``, ``"labels"``), used in messages.
      text: accept a one-column table of words (gives a string array).

    Returns:
      A numpy array (any rank; :func:`load_points` and :func:`load_labels` check it).

    Raises:
      InputError: one line naming the file and the problem.
      TypeError: ``path`` is not a file name.
    """
    path = _as_path(path)
    if not os.path.exists(path):
        raise InputError(f"{name} file {path!r} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{name} file {path!r} is a directory, not a file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise InputError(
            f"{name} file {path!r}: unknown extension {ext or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    if array is not None and ext != ".npz":
        raise InputError(f"an array name ({array!r}) applies to .npz archives, but {name} file {path!r} is {ext}")
    try:
        if ext in (".npy", ".npz"):
            return _load_numpy(path, array, name)
        return _load_table(path, ext, name, text)
    except InputError:
        raise
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read {name} file {path!r}: {_one_line(err)}") from err


def _as_path(path) -> str:
    """A file name as text: bytes and os.PathLike are decoded as the file system does."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise TypeError(f"path must be a file name (str, bytes or os.PathLike), got {type(path).__name__}") from None


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _load_numpy(path, array, name):
    """An .npy or .npz file, whichever its content is (a name can lie)."""
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise InputError(f"cannot read {name} file {path!r}: not a NumPy .npy or .npz file (no NumPy header)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise InputError(
                f"{name} file {path!r} holds Python objects (pickled), not a numeric array; save it with "
                "np.save(path, np.asarray(values, dtype=float))"
            ) from err
        raise
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return _pick_from_npz(loaded, array, path, name)
    if array is not None:
        raise InputError(f"{name} file {path!r} holds a single .npy array, not an archive with member {array!r}")
    return np.asarray(loaded)


def _pick_from_npz(archive, array, path, name):
    names = list(archive.files)
    if not names:
        raise InputError(f"{name} file {path!r} is an empty .npz archive")
    if array is None:
        if len(names) > 1:
            flag = "--labels-array" if name in ("labels", "reference") else "--array"
            raise InputError(
                f"{name} file {path!r} holds {len(names)} arrays ({', '.join(names)}); choose one by name: "
                f"{flag} NAME on the command line, array=NAME in jaxdse.io (e.g. array={names[0]!r})"
            )
        array = names[0]
    if array not in names:
        raise InputError(f"{name} file {path!r} has no array {array!r}; it holds: {', '.join(names)}")
    where = f"array {array!r} in {name} file {path!r}"
    try:
        value = archive[array]
    except ValueError as err:
        if "pickle" not in str(err).lower():
            raise
        # An object array: np.load refuses to unpickle it.
        raise InputError(f"{where} holds Python objects (pickled), not numbers; object arrays are not loaded") from err
    if isinstance(value, bytes):  # a member without a .npy header comes back as its raw bytes
        if value[:1] == b"\x80":  # the opening of a pickle (protocol 2 and later)
            raise InputError(
                f"{where} is a pickle of Python objects, not a NumPy array; object arrays and pickles are not loaded"
            )
        raise InputError(f"{where} is not a NumPy array (no .npy header)")
    return np.asarray(value)


def _load_table(path, ext, name, text):
    delimiter = {".csv": ",", ".tsv": "\t"}.get(ext)
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    rows = []  # (line number, cells)
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            cells = [c.strip().strip('"').strip() for c in (line.split(delimiter) if delimiter else line.split())]
            rows.append((number, cells))
    if text and rows and all(len(cells) == 1 for _, cells in rows):
        words = [cells[0] for _, cells in rows]
        if any(_parse_cell(w) is None for w in words[1:]):
            if words[0] not in words[1:]:
                words = words[1:]  # a header
            return np.asarray(words)
    return _numeric_table(rows, path, name)


def _numeric_table(rows, path, name):
    values = []
    for k, (number, cells) in enumerate(rows):
        parsed = [_parse_cell(c) for c in cells]
        if any(v is None for v in parsed):
            if k == 0:
                continue  # a header line, skipped
            bad = next(c for c, v in zip(cells, parsed) if v is None)
            raise InputError(f"{name} file {path!r}, line {number}: {bad!r} is not a number")
        if values and len(parsed) != len(values[0]):
            raise InputError(
                f"{name} file {path!r}, line {number}: {len(parsed)} columns, but earlier rows have {len(values[0])}"
            )
        values.append(parsed)
    if not values:
        raise InputError(f"{name} file {path!r} has no numeric rows")
    arr = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**53):
        arr = arr.astype(np.int64)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def _parse_cell(cell):
    try:
        return float(cell)
    except ValueError:
        return None


# ---------------------------------------------------------------- points, labels, references


def load_points(path, *, array: str | None = None, name: str = "features") -> Loaded:
    """Points ``[n, d]`` (float64) from a file: one row per sample.

    A ``[n]`` array is read as n points with one feature; an array of rank > 2
    (e.g. images ``[n, h, w, c]``) is flattened to ``[n, h*w*c]``; booleans
    become 0/1. Both conversions are stated in ``notes``.

    Raises:
      InputError: an unreadable file, non-numeric values, NaN or infinite
        values (naming the rows), a single number, fewer than 2 rows or no
        feature columns.
    """
    path = _as_path(path)
    raw = load_array(path, array=array, name=name)
    x = _as_numeric(raw, path, name)
    notes = []
    if x.ndim == 0:
        raise InputError(f"{name} file {path!r} holds a single number; expected points of shape [n, d]")
    if x.ndim == 1:
        notes.append(f"{path} has shape ({x.shape[0]},): read as {x.shape[0]} points with 1 feature")
        x = x.reshape(-1, 1)
    elif x.ndim > 2:
        x = _flatten(x, path, notes, " (one row per sample)")
    n, d = x.shape
    if n < 2:
        raise InputError(f"{name} file {path!r} has {n} row(s); DSE needs at least 2 points (rows)")
    if d == 0:
        raise InputError(f"{name} file {path!r} has no feature columns (shape {tuple(raw.shape)})")
    x = x.astype(np.float64)
    _check_finite(x, path, name)
    return Loaded(x, tuple(raw.shape), tuple(notes))


def load_labels(
    path, n: int | None = None, *, array: str | None = None, name: str = "labels", features="the features"
) -> Loaded:
    """Integer class labels ``[n]`` (int64) from a file.

    Accepted: integers ``[n]`` or ``[n, 1]``; booleans; floats with whole
    values; one-hot rows ``[n, C]`` (read as their argmax); text labels
    (``.npy`` string arrays, or a one-column ``.csv``/``.tsv``/``.txt`` of
    words, header optional), numbered 0..C-1 in sorted order. Conversions are
    stated in ``notes``.

    Args:
      path: file name.
      n: the number of samples the labels must describe (``None``: any).
      array: member name inside an ``.npz`` archive.
      name, features: how the labels file and the points are called in messages.

    Raises:
      InputError: an unreadable file, NaN, non-integer numbers (a continuous
        reference belongs in :func:`load_reference`), a matrix that is not
        one-hot, or a count other than ``n``.
    """
    path = _as_path(path)
    raw = load_array(path, array=array, name=name, text=True)
    y, notes = raw, []
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.shape[1] > 1 and _is_one_hot(y):
        notes.append(f"{path} holds one-hot rows [{y.shape[0]}, {y.shape[1]}]: read as class indices (argmax)")
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise InputError(
            f"{name} file {path!r} has shape {tuple(raw.shape)}; expected one label per sample, [n] or [n, 1] "
            "(for vectors such as flattened inputs use a reference: 'jaxdse dsmi --reference FILE')"
        )
    if n is not None and y.shape[0] != n:
        raise InputError(
            f"{name} file {path!r} has {y.shape[0]} labels but {features} has {n} rows; "
            "they must describe the same samples in the same order"
        )
    if y.dtype.kind in "US":
        values, y = np.unique(y, return_inverse=True)
        notes.append(f"{path}: {len(values)} text labels mapped to classes 0..{len(values) - 1} in sorted order")
    elif y.dtype == np.bool_:
        y = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        _check_finite(y, path, name)
        if not np.all(y == np.round(y)):
            example = y[np.flatnonzero(y != np.round(y))[0]]
            raise InputError(
                f"{name} file {path!r} holds non-integer values (e.g. {example:g}); class labels must be integers "
                "(for a continuous reference use 'jaxdse dsmi --reference FILE')"
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} file {path!r} holds {y.dtype} values; expected integer class labels")
    if len(np.unique(y)) < 2:
        notes.append(f"{path} holds a single class: the mutual information is 0")
    return Loaded(np.asarray(y, np.int64), tuple(raw.shape), tuple(notes))


def load_reference(
    path, n: int | None = None, *, array: str | None = None, name: str = "reference", features="the features"
) -> Loaded:
    """A continuous reference ``[n]`` or ``[n, d']`` (float64), flattened from higher rank.

    Raises:
      InputError: an unreadable file, non-numeric or non-finite values, a
        single number, or a row count other than ``n``.
    """
    path = _as_path(path)
    raw = load_array(path, array=array, name=name)
    ref, notes = _as_numeric(raw, path, name), []
    if ref.ndim == 0:
        raise InputError(f"{name} file {path!r} holds a single number; expected [n] or [n, d'] values")
    if ref.ndim > 2:
        ref = _flatten(ref, path, notes)
    if n is not None and ref.shape[0] != n:
        raise InputError(
            f"{name} file {path!r} has {ref.shape[0]} rows but {features} has {n}; "
            "they must describe the same samples in the same order"
        )
    ref = ref.astype(np.float64)
    _check_finite(ref, path, name)
    return Loaded(ref, tuple(raw.shape), tuple(notes))


def _flatten(x, path, notes, why=""):
    flat = int(np.prod(x.shape[1:]))
    notes.append(f"{path} has shape {tuple(x.shape)}: flattened to [{x.shape[0]}, {flat}]{why}")
    return x.reshape(x.shape[0], flat)


def _as_numeric(arr, path, name):
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} file {path!r} holds {arr.dtype} values; expected numbers (integers or floats)")
    return arr


def _check_finite(arr, path, name):
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise InputError(
                f"{name} file {path!r} contains {int(bad.sum())} NaN or infinite value(s) in {len(rows)} row(s) "
                f"(rows {shown}); remove or impute them first"
            )


def _is_one_hot(y):
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        return False
    y = np.asarray(y, np.float64)
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def _natural(name):
    """Sort key: ``layer_10`` after ``layer_9`` (runs of digits compared as numbers)."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_layers(path, *, array: str | None = None, exclude=(), name: str = "hidden states") -> Loaded:
    """Hidden states of every layer from ``path``: one stacked array or one member per layer.

    * ``.npy``, or the ``.npz`` member ``array``: a stack ``[L, B, T, D]`` or ``[L, N, D]``.
    * ``.npz`` without ``array``: every member not named in ``exclude`` (e.g.
      the attention mask stored beside them), in natural order of their names
      (``layer_2`` before ``layer_10``); one member is read as a stack, several as
      one layer each (``[B, T, D]`` or ``[N, D]``; widths may differ).

    Returns:
      A :class:`Loaded` whose ``values`` is an array (a stack) or a list of
      arrays (one per layer), ready for :func:`jaxdse.layerwise`.

    Raises:
      InputError: a missing or unreadable file, a member of the wrong rank,
        non-numeric or non-finite values.
    """
    path = _as_path(path)
    if not os.path.exists(path):
        raise InputError(f"{name} file {path!r} does not exist")
    if os.path.splitext(path)[1].lower() not in (".npy", ".npz"):
        raise InputError(f"{name} file {path!r}: layers are read from .npy (a stack) or .npz (one array per layer)")
    if array is not None or not zipfile.is_zipfile(path):
        stack = _as_numeric(_load_numpy(path, array, name), path, name)
        if stack.ndim not in (3, 4):
            raise InputError(
                f"{name} file {path!r}: a stack must be [L, B, T, D] or [L, N, D], got shape {stack.shape}"
            )
        _check_finite(stack, path, name)
        return Loaded(stack, stack.shape, ())
    with np.load(path, allow_pickle=False) as archive:
        names = sorted((m for m in archive.files if m not in set(exclude)), key=_natural)
        if not names:
            raise InputError(f"{name} file {path!r} holds no layer arrays (only {', '.join(archive.files)})")
        if len(names) == 1:
            return load_layers(path, array=names[0], name=name)
        layers = [_as_numeric(_pick_from_npz(archive, m, path, name), path, f"{name} {m!r}") for m in names]
    for m, h in zip(names, layers):
        if h.ndim not in (2, 3):
            raise InputError(
                f"{name} file {path!r}: layer {m!r} must be [B, T, D] or [N, D], got shape {h.shape} "
                "(an array that is not a layer is named as the mask or labels, or saved apart)"
            )
        _check_finite(h, path, f"{name} {m!r}")
    note = f"read {len(layers)} layers from {path!r} in this order: {', '.join(names)}"
    return Loaded(layers, (len(layers),) + layers[0].shape, (note,))

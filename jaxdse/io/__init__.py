"""Input and output: reading points and labels from files, figures, reporting helpers.

:mod:`~jaxdse.io.files` reads ``.npy``, ``.npz`` and text tables (its names are
re-exported here); :mod:`jaxdse.io.plotting` draws sweeps and training curves;
:mod:`jaxdse.io._report` holds a timer, JSON-ready values and a progress bar.

Imports nothing from jaxdse.
"""

from jaxdse.io.files import (
    FORMATS,
    InputError,
    Loaded,
    load_array,
    load_labels,
    load_layers,
    load_points,
    load_reference,
)

__all__ = [
    "FORMATS",
    "InputError",
    "Loaded",
    "load_array",
    "load_labels",
    "load_layers",
    "load_points",
    "load_reference",
]

"""The ``jaxdse`` command: DSE, DSMI, sweeps, layer profiles and comparisons on arrays saved in files.

::

    jaxdse dse FEATURES [--sigma S|median|sqrt_dim|knn[:K]] [--t T] [--alpha A] [--solver exact|eigh|slq]
    jaxdse dsmi FEATURES (--labels FILE | --reference FILE) [--t T[,T...]] [--num-clusters K] [--repetitions R]
    jaxdse sweep FEATURES [--labels FILE] --sigma LIST --t LIST [--plot FILE]
    jaxdse layers HIDDEN.npz [--mask NAME|FILE] [--granularity tokens|prompt|dataset] [--labels NAME|FILE] [--plot FILE]
    jaxdse compare FEATURES --labels FILE [--estimators LIST]
    jaxdse demo [--out DIR]

Every subcommand takes ``--json`` (one JSON object on stdout), ``--device cpu|gpu``,
``--x64``, ``--max-n N`` with ``--seed S`` (explicit random subsampling of the
rows) and ``--debug``. Inputs are ``.npy``, ``.npz`` (``--array NAME``),
``.csv``/``.tsv``/``.txt``; arrays of rank > 2 are flattened to ``[n, features]``.
Bad input or settings, an output path that cannot be written, and a value that
cannot be computed give one line on stderr and exit status 2.

The package is thin: :mod:`~jaxdse.cli.parser` builds the parser, one module
per command (:mod:`~jaxdse.cli.dse`, ``dsmi``, ``sweep``, ``layers``, ``compare``, ``demo``)
calls the library, and :mod:`~jaxdse.cli.report` writes tables or JSON.
:func:`main` takes the argument list and returns the exit status, so it can be
called from Python.

Imports from jaxdse: every part below it, the library mostly through ``import
jaxdse`` inside the commands.
"""

from jaxdse.cli.app import main
from jaxdse.cli.parser import build_parser

__all__ = ["main", "build_parser"]

"""``python -m jaxdse``: the ``jaxdse`` command line (see :mod:`jaxdse.cli`)."""

from jaxdse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

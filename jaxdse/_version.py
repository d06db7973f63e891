"""jaxdse's version, written once: ``version`` in pyproject.toml.

Run from a source tree (a checkout, or an unpacked sdist), the version is read
from the pyproject.toml beside the package, so it is the tree's own even when
another copy of jaxdse is installed, or this one was installed before the
version changed. Installed from a wheel, it is the installed metadata, which
the build copied from the same pyproject.toml.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _source_tree_version() -> str | None:
    try:
        project = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):  # no pyproject.toml beside the package, or not TOML
        return None
    version = project.get("version")
    return version if project.get("name") == "jaxdse" and isinstance(version, str) else None


def _version() -> str:
    version = _source_tree_version()
    if version is not None:
        return version
    try:
        return metadata.version("jaxdse")
    except metadata.PackageNotFoundError:  # neither a source tree nor installed
        return "0+unknown"


__version__ = _version()

"""Check that every public name has a place in the API reference (docs/reference/).

    python docs/check_reference.py              # the ::: directives of docs/reference/*.md
    python docs/check_reference.py --site site  # also: each name has an anchor in the built pages

The public names are ``jaxdse.__all__`` and the ``__all__`` of
``jaxdse.metrics``, ``jaxdse.monitor``, ``jaxdse.baselines`` and ``jaxdse.io``
(for a module without ``__all__``: the names it defines that do not start with
an underscore). A name counts as documented when a ``::: path`` directive
resolves to the same object, or to a module that lists it among its public
names (such a directive renders every public member). Exit status 1, with the
missing names, when any is left out.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
MODULES = ("jaxdse", "jaxdse.metrics", "jaxdse.monitor", "jaxdse.baselines", "jaxdse.io")
DIRECTIVE = re.compile(r"^::: *(?P<path>[\w.]+) *$", re.MULTILINE)


def resolve(path: str):
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
        and (inspect.isfunction(value) or inspect.isclass(value))
    ]


def directives(reference: Path) -> dict[str, str]:
    """Directive path -> the page that holds it."""
    found = {}
    for page in sorted(reference.glob("*.md")):
        for match in DIRECTIVE.finditer(page.read_text()):
            found[match.group("path")] = page.name
    return found


def documented_objects(paths) -> dict[int, str]:
    """id(object) -> the directive that documents it."""
    objects = {}
    for path in paths:
        obj = resolve(path)
        objects.setdefault(id(obj), path)
        if inspect.ismodule(obj):
            for name in public_names(obj):
                objects.setdefault(id(getattr(obj, name)), f"{path}.{name}")
    return objects


def check(reference: Path = DOCS / "reference", site: Path | None = None) -> list[str]:
    """The problems found, one line each (empty when every public name is documented)."""
    paths = directives(reference)
    problems = []
    try:
        objects = documented_objects(paths)
    except (ImportError, AttributeError) as error:
        return [f"a directive does not resolve: {error}"]
    anchors = ""
    if site is not None:
        anchors = "\n".join(p.read_text() for p in (site / "reference").rglob("*.html"))
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            public = f"{module_name}.{name}"
            where = objects.get(id(getattr(module, name)))
            if where is None:
                problems.append(f"{public}: not in the API reference (add '::: {public}' to a page of docs/reference/)")
            elif site is not None and f'id="{where}"' not in anchors:
                problems.append(f"{public}: documented by '::: {where}' but the built pages have no anchor {where!r}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a built site (mkdocs build) whose pages to check for anchors")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    problems = check(site=args.site)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print("every public name is in the API reference")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

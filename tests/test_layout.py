"""The package's layout: subpackages by pipeline stage, imports in one direction, old paths deprecated."""

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxdse"
MAX_LINES = 450

# The stages bottom first. A module may import its own unit (subpackage or
# top-level module) and the units of lower tiers, never a unit beside or above
# it. "jaxdse" is the package's face, jaxdse/__init__.py; zoo.py is the
# example network and training loop of the demo.
TIERS = [
    ("_checks", "data", "_moved", "_version"),
    ("kernels",),
    ("solvers",),
    ("entropy",),
    ("mi",),
    ("metrics", "baselines", "recipes"),
    ("monitor", "layers"),
    ("jaxdse",),
    ("io",),
    ("zoo",),
    ("cli",),
    ("__main__",),
]
TIER = {unit: i for i, units in enumerate(TIERS) for unit in units}
SUBPACKAGES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def unit_of_file(path):
    parts = path.relative_to(PACKAGE).parts
    if parts == ("__init__.py",):
        return "jaxdse"
    return parts[0].removesuffix(".py")


def package_of_file(path):
    parts = ("jaxdse",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])


def unit_of_module(name):
    """The unit of an imported module name ``jaxdse[.X[...]]``."""
    parts = name.split(".")
    return "jaxdse" if len(parts) == 1 else parts[1]


def imported_units(path):
    """``(line, imported module, unit)`` for every import of a jaxdse module in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package
                base = package_of_file(path).split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [module]
            if module == "jaxdse":  # `from jaxdse import x`: a submodule, or a name of the face
                names = [
                    f"jaxdse.{a.name}"
                    if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                    else "jaxdse"
                    for a in node.names
                ]
        else:
            continue
        found += [(node.lineno, n, unit_of_module(n)) for n in names if n == "jaxdse" or n.startswith("jaxdse.")]
    return found


def test_every_unit_has_a_tier():
    units = {unit_of_file(p) for p in modules()}
    assert sorted(units - set(TIER)) == []


def test_imports_run_one_way():
    """No module imports a unit beside or above its own (read from the source, lazy imports included)."""
    wrong = []
    for path in modules():
        unit = unit_of_file(path)
        for line, name, other in imported_units(path):
            if other != unit and TIER[other] >= TIER[unit]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({unit}) imports {name} ({other})")
    assert wrong == []


def test_checks_import_nothing_from_jaxdse():
    assert imported_units(PACKAGE / "_checks.py") == []


def test_no_module_is_longer_than_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_subpackage_says_what_it_holds_and_may_import():
    for name in SUBPACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "Imports" in doc, name


def _run(code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


ALONE = """
import importlib, json, sys, types
# The package without its face (jaxdse/__init__.py imports every stage): only what
# the subpackage itself imports gets loaded.
face = types.ModuleType("jaxdse")
face.__path__ = [{path!r}]
sys.modules["jaxdse"] = face
importlib.import_module("jaxdse.{name}")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("jaxdse."))))
"""


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_imports_alone(name):
    loaded = _run(ALONE.format(path=str(PACKAGE), name=name))
    assert f"jaxdse.{name}" in loaded
    above = sorted(m for m in loaded if unit_of_module(m) != name and TIER[unit_of_module(m)] >= TIER[name])
    assert above == []


OLD_PATHS = """
import importlib, json, sys, types, warnings

# The package, and the paths whose names it keeps, import without a deprecation warning.
warnings.filterwarnings("error", message=r"jaxdse\\.")
import jaxdse
from jaxdse import data, metrics
from jaxdse.entropy import entropy_of_spectrum, max_entropy, spectral_entropy
from jaxdse.io import InputError, load_array, load_labels, load_points, load_reference
from jaxdse.metrics import alpha_req, participation_ratio, rankme, renyi_entropy, renyi_mutual_information
from jaxdse.solvers import SLQ, Estimate, Exact, as_solver
missing = [n for n in jaxdse.__all__ if not hasattr(jaxdse, n)]

from jaxdse import _moved

results = {"missing": missing}
for old in _moved.MOVED:
    homes = [importlib.import_module(h) for h in _moved.homes(old)]
    parent, _, child = old.rpartition(".")
    for form in ("import {old} as m", "from {parent} import {child} as m", "m = {old}"):
        sys.modules.pop(old, None)
        jaxdse.__dict__.pop(child, None)
        namespace = {"jaxdse": jaxdse}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compile(form.format(old=old, parent=parent, child=child), "<old path>", "exec"), namespace)
        m = namespace["m"]
        names = {n for h in homes for n in dir(h) if not n.startswith("_")}
        same = all(getattr(m, n) is getattr(next(h for h in homes if hasattr(h, n)), n) for n in names)
        results[old + " | " + form.split(" ")[0]] = {
            "warnings": [(w.category.__name__, str(w.message), w.filename) for w in caught],
            "same": same,
            "identical": m is homes[0] if len(homes) == 1 else None,
        }
print(json.dumps(results))
"""


def test_old_paths_warn_and_give_the_same_objects():
    from jaxdse import _moved

    results = _run(OLD_PATHS)
    assert results.pop("missing") == []
    assert len(results) == 3 * len(_moved.MOVED)
    for key, result in results.items():
        old = key.split(" | ")[0]
        home = _moved.homes(old)[0]
        assert len(result["warnings"]) == 1, key
        category, message, filename = result["warnings"][0]
        assert category == "DeprecationWarning" and old in message and home in message, key
        assert filename == "<old path>", key  # the warning points at the line that names the old path
        assert result["same"], key
        assert result["identical"] in (True, None), key


def test_every_slow_tier_name_is_a_test_of_its_module():
    # A renamed test would otherwise leave the slow tier silently, and run in neither.
    from tests.conftest import SLOW

    here = pathlib.Path(__file__).parent
    for module, names in SLOW.items():
        (path,) = here.rglob(module)  # one file of that name under tests/
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
        assert not names - defined, f"{module}: no test function {sorted(names - defined)}"


def test_the_mutation_checks_mutants_apply_to_todays_sources():
    # tools/mutation.py replaces exact texts; a change to the code must not leave a mutant that no longer applies.
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import mutation
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert mutation.check_mutants() == []


LAZY = """
import json, sys
import jaxdse
before = sorted(m for m in ("jaxdse.io", "jaxdse.baselines", "jaxdse.zoo", "jaxdse.cli") if m in sys.modules)
found = {name: getattr(jaxdse, name).__name__ for name in ("io", "baselines", "zoo", "cli")}
try:
    jaxdse.no_such_thing
    missing = None
except AttributeError as e:
    missing = str(e)
print(json.dumps({"before": before, "found": found, "missing": missing}))
"""


def test_every_subpackage_is_an_attribute_of_the_package():
    """``import jaxdse`` leaves the readers, baselines, zoo and command line unloaded, yet ``jaxdse.io.load_array``
    works after it (it raised AttributeError: the subpackage had to be imported by name first)."""
    result = _run(LAZY)
    assert result["before"] == []
    assert result["found"] == {n: f"jaxdse.{n}" for n in ("io", "baselines", "zoo", "cli")}
    assert "no_such_thing" in result["missing"]

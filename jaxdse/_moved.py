"""The old module paths of jaxdse, kept as deprecated aliases of their new homes.

``import jaxdse.affinity``, ``from jaxdse.affinity import gaussian_affinity`` and
the attribute ``jaxdse.affinity`` give the new module,
:mod:`jaxdse.kernels.points`, with a DeprecationWarning that names it. One table
(:data:`MOVED`) and one import hook serve every old path; ``jaxdse/__init__.py``
installs the hook and hands its unknown attributes to :func:`load`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# Old path -> new home, or several: the first holds the module's contents, the
# others the names that moved on from it (its input checks to jaxdse._checks,
# DSMI's estimates to jaxdse.mi.estimators); names are looked up in that order.
MOVED = {
    "jaxdse.affinity": ("jaxdse.kernels.points", "jaxdse._checks"),
    "jaxdse.precomputed": ("jaxdse.kernels.precomputed", "jaxdse._checks"),
    "jaxdse.diffusion": "jaxdse.solvers.diffusion",
    "jaxdse.operators": "jaxdse.solvers.operators",
    "jaxdse.slq": "jaxdse.solvers.slq",
    "jaxdse.memory": "jaxdse.solvers.memory",
    "jaxdse.sharding": "jaxdse.solvers.sharding",
    "jaxdse._linalg": "jaxdse.solvers._linalg",
    "jaxdse.diffusion_entropy": "jaxdse.entropy.diffusion_entropy",
    "jaxdse.estimators": ("jaxdse.entropy.estimators", "jaxdse.mi.estimators", "jaxdse._checks"),
    "jaxdse.knee": "jaxdse.entropy.knee",
    "jaxdse.labels": "jaxdse.mi.labels",
    "jaxdse.clustering": "jaxdse.mi.clustering",
    "jaxdse.engine": "jaxdse.mi.engine",
    "jaxdse.sweep": "jaxdse.mi.sweep",
    "jaxdse.probes": "jaxdse.monitor",
    "jaxdse.plotting": "jaxdse.io.plotting",
    "jaxdse._report": "jaxdse.io._report",
    "jaxdse.training": ("jaxdse.monitor.training", "jaxdse.zoo"),
}


def homes(old: str) -> tuple:
    """The modules that hold what ``old`` held, the main one first."""
    new = MOVED[old]
    return new if isinstance(new, tuple) else (new,)


def load(old: str, stacklevel: int = 2):
    """The module an old path stands for, with a DeprecationWarning for the caller ``stacklevel`` frames up.

    Registered under the old name, so that each old path warns once.
    """
    new = homes(old)
    named = [new[0]] + [m for m in new[1:] if not m.rpartition(".")[2].startswith("_")]
    warnings.warn(
        f"{old} is deprecated; import from {' or '.join(named)}", DeprecationWarning, stacklevel=stacklevel + 1
    )
    modules = [importlib.import_module(m) for m in new]
    module = modules[0] if len(modules) == 1 else _Merged(old, modules)
    sys.modules[old] = module
    parent, _, child = old.rpartition(".")
    setattr(sys.modules[parent], child, module)
    return module


class _Merged(types.ModuleType):
    """The names of several modules as one, the first module's first."""

    def __init__(self, name: str, modules):
        super().__init__(name, f"Deprecated: the names of {', '.join(m.__name__ for m in modules)}.")
        self._modules = tuple(modules)
        self.__all__ = sorted({n for m in modules for n in getattr(m, "__all__", _public(m))})

    def __getattr__(self, attr):
        if not attr.startswith("__"):
            for module in self._modules:
                if hasattr(module, attr):
                    return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | {n for m in self._modules for n in dir(m)})


def _public(module):
    return [n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)]


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED`; loading one puts its new module in its place."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # The import system returns what sys.modules holds under the name afterwards.
        load(module.__name__, stacklevel=2)


def install():
    """Put the finder first on ``sys.meta_path`` (once): an old path always means its new home,
    also where another finder (an editable install of an older checkout) would find an old file."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())

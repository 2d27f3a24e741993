"""The import paths modules had before the tiers became folders (``backprop.checkpoint``,
``backprop.estimators``...) still import, as the same module objects: user code, scripts
and pickles that name them keep working. Loaded only when such a name is imported."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {f"backprop.{name}": f"backprop.{tier}.{name}" for tier, names in (
    ("edges", ("checkpoint", "datafiles", "datasets", "features", "preprocessing", "heads", "plots")),
    ("host", ("distributed", "gradcheck", "lbfgs")),
    ("apps", ("runner", "estimators", "bench"))) for name in names}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and hands back the module under its new one."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # already executed under its own name


def install() -> None:
    """Old names of modules already imported point at them now (an import through the finder
    would also set the package's attribute, and ``backprop.gradcheck`` is the function);
    the others are found when first imported."""
    for old, new in MOVED.items():
        if new in sys.modules:
            sys.modules.setdefault(old, sys.modules[new])
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())

"""Names a package exports but imports only when first used (PEP 562), so that a worker's cold start
loads what its triggers need, and a trigger's first call loads the rest."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """The package's module `__getattr__`: each name in `where` is taken from its (relative) module on
    first use and kept in the package, so later uses cost nothing."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

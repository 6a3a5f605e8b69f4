"""The house's rooms: every module's line count and the import loops between modules.

`python -m devtools.modules` prints each module of `payments/`, `sandbox/` and `function_app.py` with
its line count (over 400 flagged, unless its docstring's first paragraph says why it is longer), then
every import loop: a set of modules that import one another, found as the strongly connected components
of the import graph. Two graphs are shown: the imports that run when a module is imported (module level,
outside `if TYPE_CHECKING:`), where a loop can fail at start-up, and every import (inside functions and
type-checking blocks too), where a loop means two modules know each other: neither can be read, moved
or tested without the other. Exit code 1 when there is a loop of either kind.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("payments", "sandbox")
LIMIT = 400


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for our own code."""
    found = {"function_app": root / "function_app.py"}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(name: str, path: Path, known: dict[str, Path], *, eager_only: bool) -> set[str]:
    """The modules of ours that `name` imports (at import time only, with `eager_only`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_eager = eager
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_eager = False
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                child_eager = False  # never run, but the two modules still know each other
            if eager_only and not child_eager:
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.add(_ours(alias.name, known))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(name, is_package, child)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in known else _ours(base, known))
            visit(child, child_eager)

    visit(tree, True)
    found.discard("")
    found.discard(name)
    return found


def _ours(dotted: str, known: dict[str, Path]) -> str:
    """The longest prefix of `dotted` that is a module of ours, or ""."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return ""


def import_graph(known: dict[str, Path], *, eager_only: bool) -> dict[str, set[str]]:
    """Who imports whom among our modules. A module importing its own package (whose `__init__` re-exports
    the package's modules) is not an edge: that is not a loop between concerns."""
    graph = {name: imports(name, path, known, eager_only=eager_only) for name, path in known.items()}
    return {name: {m for m in found if not name.startswith(m + ".")} for name, found in graph.items()}


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def _reason(path: Path) -> bool:
    """Whether a long module says at its top why it is long ("Longer than ...")."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return "longer than" in doc.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", action="store_true", help="print every module's line count")
    args = parser.parse_args(argv)
    known = modules()
    counts = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in known.items()}
    long = {n: c for n, c in counts.items() if c > LIMIT}
    if args.lines:
        for name, count in sorted(counts.items()):
            print(f"{count:5d}  {name}")
        print()
    print(f"{len(known)} modules, {sum(counts.values())} lines; over {LIMIT} lines:")
    for name, count in sorted(long.items(), key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {name}{'  (says why)' if _reason(known[name]) else ''}")
    if not long:
        print("  none")
    bad = 0
    for eager_only, title in (
        (True, "at import time"),
        (False, "anywhere (inside functions and type-checking blocks too)"),
    ):
        found = loops(import_graph(known, eager_only=eager_only))
        bad += len(found)
        print(f"import loops {title}: {len(found)}")
        for component in found:
            print("  " + " <-> ".join(component))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

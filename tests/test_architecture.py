"""The package's shape: no import cycles, no global state, private modules of others unused."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import deucalion

PACKAGE = Path(deucalion.__file__).parent

# Modules allowed a `global` statement or a garbage-collector switch, and why. Each is a debt
# another change pays off; the list only shrinks.
GLOBAL_ALLOWED: dict[str, str] = {
    # Both run only in an observer's worker process, never in the host application.
    "deucalion.dispatch.in_worker": "the observer the executor's initializer installs: "
                                    "run_in_executor calls a module-level function, which "
                                    "finds it in module state",
    "deucalion.dispatch.payload": "the worker's copy of the series keys, kept between calls",
}
GC_SWITCH_ALLOWED: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _trees() -> Iterator[tuple[str, Path, ast.Module]]:
    for name, path in sorted(MODULES.items()):
        yield name, path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(name: str, path: Path, tree: ast.Module) -> set[str]:
    """Every deucalion module ``name`` imports anywhere: at the top, in a function, or only
    for type checking."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
                elif base in MODULES:
                    found.add(base)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_even_for_type_checking() -> None:
    """No two deucalion modules import each other, directly or around a loop, wherever the
    import is (module level, in a function, under TYPE_CHECKING)."""
    graph = {name: _imports(name, path, tree) for name, path, tree in _trees()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check above can fail: a loop through three modules is found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_global_statement_in_the_library() -> None:
    """Module state is never rebound from a function (state lives in objects)."""
    offenders = sorted(
        f"{name}:{node.lineno}" for name, _, tree in _trees() for node in ast.walk(tree)
        if isinstance(node, ast.Global) and name not in GLOBAL_ALLOWED)
    assert offenders == []


def test_no_garbage_collector_switch_in_the_library() -> None:
    """Nothing turns the host application's garbage collector off (or on, or tunes it)."""
    offenders = []
    for name, _, tree in _trees():
        if name in GC_SWITCH_ALLOWED:
            continue
        for node in ast.walk(tree):
            attribute = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "gc" and node.attr in ("disable", "enable", "freeze",
                                                             "set_threshold")
            imported = isinstance(node, ast.ImportFrom) and node.module == "gc"
            if attribute or imported:
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_no_private_module_of_a_dependency() -> None:
    """aiohttp is used through its public names (aiohttp, aiohttp.web), never aiohttp.web_*."""
    offenders = []
    for name, _, tree in _trees():
        for node in ast.walk(tree):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name}: {m}" for m in modules if m.startswith("aiohttp.web_")]
    assert offenders == []

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
        f"{name}:{node.lineno}"
        for name, _, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Global) and name not in GLOBAL_ALLOWED
    )
    assert offenders == []


def test_no_garbage_collector_switch_in_the_library() -> None:
    """Nothing turns the host application's garbage collector off (or on, or tunes it)."""
    offenders = []
    for name, _, tree in _trees():
        if name in GC_SWITCH_ALLOWED:
            continue
        for node in ast.walk(tree):
            attribute = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "gc"
                and node.attr in ("disable", "enable", "freeze", "set_threshold")
            )
            imported = isinstance(node, ast.ImportFrom) and node.module == "gc"
            if attribute or imported:
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_no_private_module_of_a_dependency() -> None:
    """aiohttp is used through its public names (aiohttp, aiohttp.web), never aiohttp.web_*."""
    offenders = []
    for name, _, tree in _trees():
        for node in ast.walk(tree):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{name}: {m}" for m in modules if m.startswith("aiohttp.web_")]
    assert offenders == []


# --- the stages of the data flow (DESIGN.md's components table) ------------------------------

# The stages in the order DESIGN.md's components table lists them, each with its modules (a
# module belongs to the longest prefix that names it). Not stages: the provisioner and the cli,
# which wire the stages together (they may import any); and the leaves below every stage, which
# import none: errors, the HTTP plumbing, config, the exposition grammar and parser, series keys
# (the observer contract's notation) and the small private helpers.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("observer contract", ("deucalion.observer",)),
    ("targets", ("deucalion.targets",)),
    ("collection", ("deucalion.collection",)),
    ("dispatch", ("deucalion.dispatch",)),
    ("alerting", ("deucalion.alerting",)),
    ("history and detectors", ("deucalion.history", "deucalion.detectors")),
    ("presets", ("deucalion.presets",)),
    ("replay", ("deucalion.replay",)),
    ("telemetry", ("deucalion.telemetry",)),
    ("injector", ("deucalion.injector",)),
]
LEAVES = (
    "deucalion.errors",
    "deucalion._http",
    "deucalion._redact",
    "deucalion.config",
    "deucalion.exposition",
    "deucalion.history.labels",
    "deucalion._lazy",
    "deucalion._version",
    "deucalion._extras",
    "deucalion._supervision",
    "deucalion.runner",
)
# Imports from a stage to a later one, and why. The list only shrinks.
LATER_ALLOWED: dict[tuple[str, str], str] = {
    (
        "deucalion.targets",
        "deucalion.collection.collector",
    ): "README documents CollectingProvider (a provider that also collects) in deucalion.targets",
}
# Classes over 400 lines, and why. The list only shrinks.
LONG_CLASSES_ALLOWED: dict[str, str] = {}
MAX_CLASS_LINES = 400
MAX_TOP_LEVEL_MODULES = 12


def _owner(module: str, groups: tuple[str, ...]) -> str | None:
    """The longest of ``groups`` that is ``module`` or a package holding it."""
    found = [g for g in groups if module == g or module.startswith(g + ".")]
    return max(found, key=len, default=None)


def _stage(module: str) -> int | None:
    """The index in STAGES of ``module``'s stage; None for a leaf, the provisioner, the cli."""
    prefixes = tuple(p for _, group in STAGES for p in group)
    stage_prefix = _owner(module, prefixes)
    leaf = _owner(module, LEAVES)
    if stage_prefix is None or (leaf is not None and len(leaf) > len(stage_prefix)):
        return None
    return next(i for i, (_, group) in enumerate(STAGES) if stage_prefix in group)


def test_no_import_from_a_stage_to_a_later_one() -> None:
    """A stage of the data flow never imports a later one (targets know nothing of collection,
    collection nothing of dispatch, ...), wherever the import is."""
    offenders = []
    for name, path, tree in _trees():
        here = _stage(name)
        for imported in _imports(name, path, tree):
            there = _stage(imported)
            if (
                here is not None
                and there is not None
                and there > here
                and (name, imported) not in LATER_ALLOWED
            ):
                offenders.append(
                    f"{name} ({STAGES[here][0]}) imports {imported} ({STAGES[there][0]})"
                )
    assert offenders == []


def test_collection_imports_nothing_of_the_targets() -> None:
    """Collection reads a target through its own protocol: no import runs from collection up
    to target discovery."""
    offenders = sorted(
        f"{name} imports {imported}"
        for name, path, tree in _trees()
        if name.startswith("deucalion.collection")
        for imported in _imports(name, path, tree)
        if imported.startswith("deucalion.targets")
    )
    assert offenders == []


def test_leaves_import_no_stage() -> None:
    """The leaves (errors, HTTP plumbing, config, the exposition grammar, series keys) import
    no stage, the provisioner or the cli."""
    offenders = []
    for name, path, tree in _trees():
        if _owner(name, LEAVES) is None:
            continue
        for imported in _imports(name, path, tree):
            if (
                _stage(imported) is not None
                or _owner(imported, ("deucalion.provisioner", "deucalion.cli")) is not None
            ):
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_the_stage_check_sees_a_later_import() -> None:
    """The rule can fail: targets importing dispatch is a stage importing a later one, and the
    series-key leaf inside history is no stage."""
    assert _stage("deucalion.targets.file_sd") == 1 and _stage("deucalion.dispatch.calls") == 3
    assert _stage("deucalion.history.labels") is None and _stage("deucalion.history.window") == 5
    assert _stage("deucalion.provisioner.cycle") is None


def test_no_class_over_400_lines() -> None:
    """No class passes 400 lines: one that does is usually two concepts."""
    offenders = sorted(
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, _, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
        and f"{name}.{node.name}" not in LONG_CLASSES_ALLOWED
    )
    assert offenders == []


def test_at_most_12_modules_at_the_top_level() -> None:
    """The top of the package is a handful of modules beside the stages' packages (not
    counting __init__, __main__ and _version)."""
    top = sorted(
        p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "_version")
    )
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_error_lives_in_errors_and_in_its_tree() -> None:
    """Every DeucalionError subclass is defined in deucalion.errors, whose docstring draws it."""
    import deucalion.errors as errors

    errors_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.DeucalionError)
    }
    outside = []
    for name, _, tree in _trees():
        if name == "deucalion.errors":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", None) or getattr(b, "attr", None) for b in node.bases}
                if bases & errors_classes:
                    outside.append(f"{name}.{node.name}")
    assert outside == []
    doc = errors.__doc__ or ""
    assert (
        sorted(
            e
            for e in errors_classes
            if f"── {e} " not in doc
            and not doc.lstrip().startswith(e)
            and f"\n    {e}\n" not in doc
        )
        == []
    )

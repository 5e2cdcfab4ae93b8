"""The public API: deucalion's __all__ is complete, sorted, importable and as README documents."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import deucalion


def test_all_is_sorted_and_every_name_resolves() -> None:
    """Every name in __all__ exists, and the list is sorted."""
    assert deucalion.__all__ == sorted(deucalion.__all__)
    for name in deucalion.__all__:
        assert getattr(deucalion, name) is not None, name


def test_all_lists_the_seed_api() -> None:
    """The names the seed and the design promise are exported."""
    expected = {
        "MetricsObserver",
        "MetricsProvisioner",
        "parse_exposition",
        "DeucalionError",
        "ConfigError",
        "ParseError",
        "__version__",
    }
    assert expected <= set(deucalion.__all__)


def test_public_names_have_docstrings() -> None:
    """Every exported class and function documents itself."""
    for name in deucalion.__all__:
        value = getattr(deucalion, name)
        if callable(value):
            assert value.__doc__, name


def _documented_api() -> dict[str, set[str]]:
    """README's API table: module -> the names it lists."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`deucalion"):
            table[cells[0].strip("`")] = set(re.findall(r"`([^`]+)`", cells[1]))
    return table


def test_the_public_names_are_exactly_what_readme_documents() -> None:
    """deucalion.__all__, and the __all__ of every module README's API section lists, hold
    exactly the names README lists for it: no undocumented public name, no promise unkept."""
    table = _documented_api()
    assert "deucalion" in table and len(table) > 1
    for module_name, names in table.items():
        module = importlib.import_module(module_name)
        assert set(module.__all__) == names, module_name
        assert all(hasattr(module, name) for name in names), module_name


def test_the_documented_modules_public_names_have_docstrings() -> None:
    """Every class and function a module of README's API table exports documents itself."""
    for module_name in _documented_api():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value) and not name.startswith("_"):
                assert value.__doc__, f"{module_name}.{name}"

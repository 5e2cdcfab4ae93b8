"""deucalion.injector's public names."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "deucalion.injector",
    "deucalion.injector.certs",
    "deucalion.injector.cli",
    "deucalion.injector.cluster",
    "deucalion.injector.manifest",
    "deucalion.injector.metrics",
    "deucalion.injector.mutation",
    "deucalion.injector.policy",
    "deucalion.injector.review",
    "deucalion.injector.settings",
    "deucalion.injector.webhook",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_documented(name: str) -> None:
    """Each module's __all__ is sorted, names things that exist, and each has a docstring."""
    module = importlib.import_module(name)
    exported = module.__all__
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    assert module.__doc__
    for attr in exported:
        obj = getattr(module, attr)
        if callable(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_settings_fields_are_described() -> None:
    """Every settings field has a one-line description (from its attribute docstring)."""
    from deucalion.injector.settings import InjectorSettings

    sections = [InjectorSettings, *(f.annotation for f in InjectorSettings.model_fields.values())]
    for section in sections:
        for field_name, field in section.model_fields.items():  # type: ignore[union-attr]
            assert field.description and "\n" not in field.description, field_name

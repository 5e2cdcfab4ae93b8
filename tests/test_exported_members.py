"""The public API: deucalion's __all__ is complete, sorted and importable."""

from __future__ import annotations

import deucalion


def test_all_is_sorted_and_every_name_resolves() -> None:
    """Every name in __all__ exists, and the list is sorted."""
    assert deucalion.__all__ == sorted(deucalion.__all__)
    for name in deucalion.__all__:
        assert getattr(deucalion, name) is not None, name


def test_all_lists_the_seed_api() -> None:
    """The names the seed and the design promise are exported."""
    expected = {"MetricsObserver", "MetricsProvisioner", "parse_exposition", "DeucalionError",
                "ConfigError", "ParseError", "__version__"}
    assert expected <= set(deucalion.__all__)


def test_public_names_have_docstrings() -> None:
    """Every exported class and function documents itself."""
    for name in deucalion.__all__:
        value = getattr(deucalion, name)
        if callable(value):
            assert value.__doc__, name

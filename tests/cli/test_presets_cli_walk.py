"""README's "Watching a service without code", walked as a new user: the commands as written,
and the slips a user makes with them."""

from __future__ import annotations

import pytest

from deucalion.cli import main


@pytest.mark.parametrize(
    ("given", "meant", "target"),
    [
        ("http-servce", "http-service", []),
        ("http-servce", "http-service", ["--target", "127.0.0.1:1"]),
        ("NODE-EXPORTER", "node-exporter", ["--target", "127.0.0.1:1"]),
    ],
)
def test_presets_show_tells_a_misspelt_preset_the_one_meant(
    capsys: pytest.CaptureFixture[str], given: str, meant: str, target: list[str]
) -> None:
    """`deucalion presets show http-servce` said only "choose one of ...", where `run
    --preset http-servce` says "did you mean 'http-service'?"; a name in capitals was told of
    no preset at all. The name is checked before the target is scraped."""
    assert main(["presets", "show", given, *target]) == 1
    err = capsys.readouterr().err
    assert f"presets show: unknown preset {given!r}: did you mean {meant!r}?" in err
    assert "is down" not in err


def test_run_tells_a_preset_in_capitals_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--preset", "HTTP-SERVICE"]) == 1
    assert "did you mean 'http-service'?" in capsys.readouterr().err

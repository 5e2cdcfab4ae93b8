"""The ``deucalion`` command: a thin layer over the library.

- ``commands``: the parser, ``main`` and the core commands (check-config, targets, scrape, run,
  demo); ``deucalion.replay.cli`` and ``deucalion.injector.cli`` add theirs;
- ``shared``: what every command builds from its arguments (settings, metric lists, observers
  given by import path).
"""

from __future__ import annotations

from deucalion.cli.commands import build_parser, load_object, main

__all__ = ["build_parser", "load_object", "main"]

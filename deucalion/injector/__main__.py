"""``python -m deucalion.injector``: the injector commands without the main CLI."""

from deucalion.injector.cli import main

raise SystemExit(main())

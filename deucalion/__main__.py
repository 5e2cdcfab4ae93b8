"""``python -m deucalion``: the same as the ``deucalion`` command."""

import sys

from deucalion.cli import main

sys.exit(main())

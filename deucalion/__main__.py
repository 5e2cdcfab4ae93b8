"""``python -m deucalion``: the same as the ``deucalion`` command."""

import sys

from deucalion.cli import main

if __name__ == "__main__":
    sys.exit(main())

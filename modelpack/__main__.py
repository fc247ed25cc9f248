"""``python -m modelpack``: the command line (see ``modelpack.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

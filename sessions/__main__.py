"""``python -m sessions``: the same as the ``sessions`` command."""

import sys

from sessions.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m threadhost.golden [--check]``: the command for the golden vectors' generator,
which lives in :mod:`threadhost.tools.golden` (docs/protocol.md, "Golden vectors")."""

import sys

from threadhost.tools.golden import main

if __name__ == "__main__":
    sys.exit(main())

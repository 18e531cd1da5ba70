"""``python -m threadhost.stress``: the command users type for the stress tools, which live in
:mod:`threadhost.tools.stress` (docs/reliability.md)."""

import sys

from threadhost.tools.stress import main

if __name__ == "__main__":
    sys.exit(main())

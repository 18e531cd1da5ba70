"""``python -m threadhost`` — same as the ``threadhost`` command."""

from threadhost.cli import main

if __name__ == "__main__":
    main()

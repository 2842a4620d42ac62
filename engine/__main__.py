"""`python -m engine`: the engine's commands (the installed `mremap-viz` adds the service's)."""

import sys

from engine.cli import main as cli_main


def main() -> int:
    """The exit code of the engine's CLI."""
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

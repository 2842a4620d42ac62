"""`python -m engine` and the `mremap-viz` console script."""

import sys

from engine.cli import main as cli_main


def main() -> int:
    """The console script's entry point: the CLI's exit code."""
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""python -m app [--host H] [--port P] [--workers N]: `mremap-viz serve`."""

from __future__ import annotations

import argparse
import sys

from app.cli import add_serve_options, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    add_serve_options(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

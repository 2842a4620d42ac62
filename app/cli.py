"""The installed `mremap-viz` command: the engine's commands, plus the service's.

`serve` runs the web app under uvicorn (several worker processes with
--workers; they share the store, so give them DATABASE_URL or one data
directory). `links export FILE` / `links import FILE` move every short link
between stores (app/links_io.py), so a deployment can go from SQLite to
PostgreSQL, or to a new host, with every link intact.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn

from app.config import data_dir
from app.links_io import LinkFileError, export_links, import_links
from app.store import StoreRefused, open_store
from engine import cli as engine_cli

EXIT_STORE = 5
"""links: the store refused (its quota, a full disk, a database away)."""


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """--host, --port, --workers: shared by `mremap-viz serve` and `python -m app`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port (1)"
    )


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted. X-Forwarded-For is never trusted by uvicorn
    itself: the app trusts it only from MREMAP_VIZ_TRUSTED_PROXIES (app/clients.py)."""
    if args.workers < 1:
        print("serve: --workers must be at least 1", file=sys.stderr)
        return engine_cli.EXIT_PARSE
    uvicorn.run(
        "app.main:serving_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,
        server_header=False,
    )
    return engine_cli.EXIT_OK


def _links(args: argparse.Namespace) -> int:
    store = open_store(data_dir())
    try:
        if args.action == "export":
            with open(args.file, "w", encoding="utf-8") as out:
                count = export_links(store, out)
            print(f"exported {count} links to {args.file}")
        else:
            with open(args.file, encoding="utf-8") as lines:
                added, present = import_links(store, lines)
            print(f"imported {added} links ({present} were already there) from {args.file}")
    except OSError as e:
        print(f"{args.file}: {e.strerror}", file=sys.stderr)
        return engine_cli.EXIT_PARSE
    except LinkFileError as e:
        print(f"{args.file}:{e.line}: {e}", file=sys.stderr)
        return engine_cli.EXIT_PARSE
    except StoreRefused as e:
        print(f"links {args.action}: {e} ({e.limit})", file=sys.stderr)
        return EXIT_STORE
    finally:
        store.close()
    return engine_cli.EXIT_OK


def add_commands(commands: Any) -> None:
    """`serve` and `links` beside the engine's run, verify, show and list."""
    server = commands.add_parser("serve", help="serve the web visualizer")
    add_serve_options(server)
    server.set_defaults(command=serve)
    links = commands.add_parser(
        "links", help="export or import every short link (DATABASE_URL or the data directory)"
    )
    links.add_argument("action", choices=("export", "import"))
    links.add_argument("file", metavar="FILE", help="JSON lines: id, source, options, engine")
    links.set_defaults(command=_links)


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point: the exit code."""
    return engine_cli.main(sys.argv[1:] if argv is None else argv, more=(add_commands,))


if __name__ == "__main__":
    sys.exit(main())

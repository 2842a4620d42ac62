"""Real app servers for the tests that need one: on loopback, a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(data: Path, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m app` on 127.0.0.1:port with MREMAP_VIZ_DATA=data (and
    `env`, and further command-line `args` such as --workers 2), once it
    answers; RuntimeError if it does not within 30 s. No warm-up
    (app/warmup.py) unless `env` sets MREMAP_VIZ_WARM_PAGES."""
    environ = {**os.environ, "MREMAP_VIZ_DATA": str(data), "MREMAP_VIZ_WARM_PAGES": "0", **env}
    if "DATABASE_URL" not in env:
        environ.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/index.json", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("the app server did not start within 30 s")

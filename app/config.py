"""Where the app keeps its data (MREMAP_VIZ_DATA, or a per-user data directory),
and the origin it is reached at (MREMAP_VIZ_PUBLIC_URL)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory, created if missing. Nothing is stored in it yet.

    MREMAP_VIZ_DATA wins; otherwise $XDG_DATA_HOME/mremap-viz, falling back
    to ~/.local/share/mremap-viz as the XDG base directory spec says.
    """
    configured = os.environ.get("MREMAP_VIZ_DATA")
    if configured:
        path = Path(configured)
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "mremap-viz"
    path.mkdir(parents=True, exist_ok=True)
    return path


def public_url() -> str | None:
    """MREMAP_VIZ_PUBLIC_URL (`https://host[:port]`, no path): the origin the `.txt`
    twins' `Link:` lines name, whatever Host a request says; None (unset): the
    request's own. ValueError naming the variable if it is not such an origin."""
    configured = os.environ.get("MREMAP_VIZ_PUBLIC_URL", "").rstrip("/")
    if not configured:
        return None
    scheme, sep, host = configured.partition("://")
    if scheme not in ("http", "https") or not sep or not host or "/" in host:
        raise ValueError(f"MREMAP_VIZ_PUBLIC_URL must be http(s)://host[:port], not {configured!r}")
    return configured

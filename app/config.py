"""Where the app keeps its data: MREMAP_VIZ_DATA, or a per-user data directory."""

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

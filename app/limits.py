"""The web service's named limits, in one place.

Each bounds what one request may cost; error messages name the constant.
"""

from __future__ import annotations

from engine.scenario.limits import MAX_SOURCE_BYTES

# --- sharing (app/share.py) ---------------------------------------------------

# Longest self-contained link token (`/play?s=v1.<token>`), in characters.
# A 64 KiB source compresses to well under this; longer URLs break in proxies.
MAX_TOKEN_CHARS = 16_000

# Most bytes a token may inflate to: the canonical JSON of source and options.
# JSON escapes may grow a source up to six-fold (\u0001), so allow headroom.
MAX_DECOMPRESSED_BYTES = 6 * MAX_SOURCE_BYTES + 1024

# Largest shared source, in UTF-8 bytes: the scenario language's own limit.
MAX_SHARED_SOURCE_BYTES = MAX_SOURCE_BYTES

# Largest body of POST /api/share and POST /share.
MAX_SHARE_BODY_BYTES = 8 * MAX_SOURCE_BYTES

# Shortest short-link id (hex digits of the scenario's SHA-256); a colliding
# prefix grows one digit at a time until it is unique.
MIN_ID_LENGTH = 8

"""Text for review mail: at most 75 columns wide.

Ours. Kernel developers paste what the engine prints into plain-text email,
so every line the text views make is fitted here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

WIDTH = 75


def fit(lines: Iterable[str]) -> list[str]:
    """Every line wrapped to WIDTH columns, continuations indented two more."""
    out: list[str] = []
    for text in lines:
        for line in text.split("\n"):
            if len(line) <= WIDTH:
                out.append(line)
                continue
            indent = " " * min(len(line) - len(line.lstrip(" ")), WIDTH // 2)
            out += textwrap.wrap(
                line.strip(),
                WIDTH,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_long_words=True,
                break_on_hyphens=False,
            )
    return out

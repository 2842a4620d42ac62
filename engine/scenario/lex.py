"""A scenario's text as both parsers read it (engine.scenario.parse, .harness).

Ours: just enough of C's lexical structure to find comments, statement ends
and labels, and the text's offsets as the user's lines and columns. Comments
are blanked in place rather than removed, so every position stays put.
"""

import bisect
import re

from engine.scenario.errors import ScenarioError

# Not fooled by a ';' or '//' inside a character or string literal.
TOKEN = re.compile(
    r"""
      (?P<space>[ \t\n\r\f\v]+)
    | (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<open_comment>/\*)
    | (?P<literal>[LuU]?'(?:\\.|[^'\\\n])*'?|(?:u8|[LuU])?"(?:\\.|[^"\\\n])*"?)
    | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<number>[0-9][0-9A-Za-z_.]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def newlines(text: str) -> str:
    """CRLF (what a browser's textarea sends) and CR as newlines: pycparser rejects '\\r'.

    The text keeps its length, so every offset stays put.
    """
    return text.replace("\r\n", " \n").replace("\r", "\n")


class Lines:
    """Text with an index from offsets to 1-based lines and columns."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1

    def offset(self, line: int, col: int) -> int:
        line = min(max(line, 1), len(self.starts))
        return min(self.starts[line - 1] + max(col, 1) - 1, len(self.text))

    def end(self) -> tuple[int, int]:
        """Just past the last character that is not whitespace."""
        return self.position(len(self.text.rstrip()))

    def error(self, offset: int, message: str) -> ScenarioError:
        return ScenarioError(*self.position(offset), message)


def blank(text: str) -> str:
    """Spaces in place of text, newlines kept, so every later column stays put."""
    return re.sub(r"[^\n]", " ", text)

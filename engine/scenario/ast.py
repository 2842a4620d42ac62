"""The parsed form of a scenario: statements and expressions as frozen dataclasses.

Every pointer is a `char *` here: `p + n` and `&p[n]` both mean the address n
bytes past p, whatever type the scenario declared, because the scenario only
ever talks about bytes and pages. Every node keeps the user's line and column
so a runtime error (division by zero) can point at it.
"""

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class Num:
    """An integer or character literal, already reduced to its value."""

    value: int
    line: int
    col: int


@dataclass(frozen=True)
class Name:
    """A variable or a constant from `constants.CONSTANTS`, looked up when evaluated."""

    name: str
    line: int
    col: int


@dataclass(frozen=True)
class Unary:
    """`-x`, `+x` or `~x`."""

    op: str
    operand: "Expr"
    line: int
    col: int


@dataclass(frozen=True)
class Binary:
    """`left op right` for + - * / % << >> | & ^; the position is the operator's."""

    op: str
    left: "Expr"
    right: "Expr"
    line: int
    col: int


@dataclass(frozen=True)
class Call:
    """A call the engine knows (`parse.CALLS`), only ever a whole right-hand side."""

    name: str
    args: tuple["Expr", ...]
    line: int
    col: int


@dataclass(frozen=True)
class Load:
    """A one-byte read (`p[n]`, `*p`): a read fault, only ever a whole right-hand side."""

    address: "Expr"
    line: int
    col: int


Expr: TypeAlias = Num | Name | Unary | Binary | Call | Load


@dataclass(frozen=True)
class Store:
    """A one-byte write (`p[n] = v`, `*p = v`): a write fault on the page it touches."""

    address: Expr
    value: Expr
    line: int
    col: int


@dataclass(frozen=True)
class Statement:
    """One step of the scenario, run by one process.

    `action` is a Store, or an expression whose value goes to `target` (a
    variable name) when there is one; a statement without a target is a bare
    call or load. `creates` is the process a fork makes. `source` is the
    statement's text, label and comments removed and whitespace collapsed,
    for display; `line` and `col` are where that text starts.
    """

    line: int
    col: int
    source: str
    process: str
    target: str | None
    action: Expr | Store
    creates: str | None = None


@dataclass(frozen=True)
class Scenario:
    """The statements in order, and every process they create (`main` first)."""

    statements: tuple[Statement, ...]
    processes: tuple[str, ...]

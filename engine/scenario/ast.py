"""The parsed form of a scenario: statements and expressions as frozen dataclasses.

Every pointer is a `char *` here: `p + n` and `&p[n]` both mean the address n
bytes past p, whatever type the scenario declared, because the scenario only
ever talks about bytes and pages. Every node keeps the user's line and column
so a runtime error (division by zero) can point at it.
"""

from dataclasses import dataclass
from typing import TypeAlias

from engine.mm_types import RmapModel


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
    operand: "HExpr"
    line: int
    col: int


@dataclass(frozen=True)
class Binary:
    """`left op right` for + - * / % << >> | & ^; the position is the operator's."""

    op: str
    left: "HExpr"
    right: "HExpr"
    line: int
    col: int


@dataclass(frozen=True)
class Call:
    """A call the engine knows (`parse.CALLS`), only ever a whole right-hand side."""

    name: str
    args: tuple["HExpr", ...]
    line: int
    col: int


@dataclass(frozen=True)
class Load:
    """A one-byte read (`p[n]`, `*p`): a read fault, only ever a whole right-hand side."""

    address: "HExpr"
    line: int
    col: int


Expr: TypeAlias = Num | Name | Unary | Binary | Call | Load


@dataclass(frozen=True)
class Store:
    """A one-byte write (`p[n] = v`, `*p = v`): a write fault on the page it touches."""

    address: "HExpr"
    value: "HExpr"
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
    action: "HExpr | Store"
    creates: str | None = None


@dataclass(frozen=True)
class Scenario:
    """The statements in order, every process they create (`main` first),
    and what its directives choose (engine.scenario.directives; None: no
    `// @policy` or `// @rmap` line)."""

    statements: tuple[Statement, ...]
    processes: tuple[str, ...]
    policy: str | None = None
    rmap_model: RmapModel | None = None


# --- the kselftest harness subset -------------------------------------------
# A harness file (merge.c and the like) is C with control flow: its tests are
# trees of the nodes below, run by engine.scenario.machine one process at a
# time. The expressions above are shared; these add what the selftests write.


@dataclass(frozen=True)
class Member:
    """`base->field` (arrow) or `base.field`: a fixture member, a procmap query field."""

    base: "HExpr"
    field: str
    arrow: bool
    line: int
    col: int


@dataclass(frozen=True)
class AddressOf:
    """`&self->procmap`: a reference to a struct, passed to the procmap helpers."""

    operand: "HExpr"
    line: int
    col: int


@dataclass(frozen=True)
class Cast:
    """`(unsigned long)ptr`: the value is kept, the signedness becomes the type's."""

    signed: bool
    operand: "HExpr"
    line: int
    col: int


@dataclass(frozen=True)
class Text:
    """A string literal: only ever SKIP()'s reason."""

    value: str
    line: int
    col: int


HExpr: TypeAlias = Num | Name | Unary | Binary | Call | Load | Member | AddressOf | Cast | Text


@dataclass(frozen=True)
class Step:
    """A statement that runs as one step: a call, an assignment, a declaration with a value.

    `target` is a Name, a Member or a Load (a store to memory) or None;
    `op` is "=" or a compound operator ("+="). `signed` is the target's C
    type's signedness, which the assigned value takes (None for memory).
    """

    line: int
    col: int
    source: str
    target: HExpr | None
    op: str
    value: HExpr
    signed: bool | None = None


@dataclass(frozen=True)
class Check:
    """`ASSERT_EQ(a, b)`, `EXPECT_TRUE(a)`, ...: `right` is None for the _TRUE/_FALSE forms."""

    line: int
    col: int
    source: str
    macro: str
    left: HExpr
    right: HExpr | None
    left_text: str
    right_text: str


@dataclass(frozen=True)
class Skip:
    """`SKIP(statement, reason)`: the test ends as skipped."""

    line: int
    col: int
    source: str
    reason: str


@dataclass(frozen=True)
class Unmodelled:
    """Something outside the model (a file, perf_event_open, sizeof): reaching it skips the test."""

    line: int
    col: int
    source: str
    what: str


@dataclass(frozen=True)
class If:
    """`if (cond) ... else ...`; `head` is the text up to the condition's ')'."""

    line: int
    col: int
    head: str
    cond: HExpr
    then: "Block"
    orelse: "Block | None"


@dataclass(frozen=True)
class Loop:
    """`for`, `while` and `do ... while`; a missing `cond` is true."""

    line: int
    col: int
    head: str
    kind: str
    init: "Code | None"
    cond: HExpr | None
    step: "Code | None"
    body: "Block"


@dataclass(frozen=True)
class Jump:
    """`return`, `break` or `continue`."""

    line: int
    col: int
    source: str
    kind: str


@dataclass(frozen=True)
class Block:
    items: tuple["Code", ...]


Code: TypeAlias = Step | Check | Skip | Unmodelled | If | Loop | Jump | Block


@dataclass(frozen=True)
class Fixture:
    """`FIXTURE(name)`: its members' signedness, its setup and teardown."""

    name: str
    members: tuple[tuple[str, bool], ...]
    setup: Block | None
    teardown: Block | None


@dataclass(frozen=True)
class Note:
    """Something the harness parser skipped on purpose (an #include, a helper function)."""

    line: int
    col: int
    text: str


@dataclass(frozen=True)
class HarnessTest:
    """`TEST_F(fixture, name)` or `TEST(name)`; `name` as the harness prints it."""

    name: str
    line: int
    col: int
    fixture: Fixture | None
    body: Block

    def answers_to(self, wanted: str) -> bool:
        """Whether `wanted` names this test: its full name (merge.ksm_merge) or its own (ksm_merge)."""
        return wanted in (self.name, self.name.split(".", 1)[-1])


@dataclass(frozen=True)
class HarnessFile:
    """Every test of a harness file, the enum constants it defines, what was
    skipped, and what its directives choose for every test (as Scenario's)."""

    tests: tuple[HarnessTest, ...]
    constants: tuple[tuple[str, int], ...]
    notes: tuple[Note, ...]
    policy: str | None = None
    rmap_model: RmapModel | None = None

"""Runs a parsed scenario against a Backend, one statement at a time.

All variables live in ONE environment shared by every process. That is what
fork gives for everything assigned before the fork (the child sees the
parent's values); after a fork each process would in C have its own copy,
but a scenario is one sequential program, so a value assigned later is
simply seen by every process. Arithmetic is on 64-bit unsigned integers and
wraps modulo 2**64: division and `>>` are unsigned, a shift by 64 or more
gives 0, and casts change nothing.
"""

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.scenario import ast
from engine.scenario.constants import CONSTANTS
from engine.scenario.errors import ScenarioError
from engine.scenario.limits import MAX_U64
from engine.sim.backend import Backend, CallResult

_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.floordiv,
    "%": operator.mod,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "|": operator.or_,
    "&": operator.and_,
    "^": operator.xor,
}


@dataclass(frozen=True)
class CheckResult:
    """An ASSERT_*/EXPECT_* as it ran: both values, as the harness would print them."""

    macro: str
    passed: bool
    left_text: str
    right_text: str
    left: int
    right: int | None

    def describe(self) -> str:
        """`ASSERT_EQ(a, b): 0x7ffff7fe4000 == 0x7ffff7fe9000 failed`."""
        op = _CHECK_OPS[self.macro.split("_", 1)[1]]
        if self.right is None:
            shown = f"{self.macro}({self.left_text}): {show_value(self.left)} is {op}"
        else:
            shown = (
                f"{self.macro}({self.left_text}, {self.right_text}): "
                f"{show_value(self.left)} {op} {show_value(self.right)}"
            )
        return f"{shown} {'passed' if self.passed else 'failed'}"

    def as_dict(self) -> dict[str, object]:
        return {
            "macro": self.macro,
            "passed": self.passed,
            "left": self.left_text,
            "right": self.right_text if self.right is not None else None,
            "left_value": self.left,
            "right_value": self.right,
            "text": self.describe(),
        }


_CHECK_OPS = {
    "EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=",
    "TRUE": "true", "FALSE": "false",
}  # fmt: skip
HEX_FROM = 0x10000


def show_value(value: int) -> str:
    """A value as a test author reads it: small numbers in decimal, addresses in hex."""
    if -HEX_FROM < value < HEX_FROM:
        return str(value)
    return f"{value & MAX_U64:#x}"


@dataclass(frozen=True)
class StepOutcome:
    """A statement and what the backend said about it; `check` for an assertion;
    `phase` in a harness test: "setup", "body" or "teardown" (the fixture's
    lines may be merge.c's own, not the file's)."""

    statement: ast.Statement
    result: CallResult
    check: CheckResult | None = None
    phase: str | None = None


def run(scenario: ast.Scenario, backend: Backend) -> Iterator[StepOutcome]:
    """Run the statements in order, yielding after each so the caller can look at the maps.

    A failed call does not stop the scenario; only an error in the scenario
    itself (division by zero) does, as a ScenarioError.
    """
    variables: dict[str, int] = {}
    for statement in scenario.statements:
        result = _execute(statement, variables, backend)
        if statement.target is not None:
            variables[statement.target] = _assigned(result)
        yield StepOutcome(statement, result)


def step_record(outcome: StepOutcome) -> dict[str, object]:
    """The keys every step of the CLI's JSON carries (the caller adds "maps")."""
    record: dict[str, object] = {
        "line": outcome.statement.line,
        "source": outcome.statement.source,
        "process": outcome.statement.process,
        "result": outcome.result.result,
        "value": outcome.result.value,
    }
    if outcome.check is not None:
        record["assertion"] = outcome.check.as_dict()
    return record


def _execute(statement: ast.Statement, variables: dict[str, int], backend: Backend) -> CallResult:
    action = statement.action
    process = statement.process
    if isinstance(action, ast.Store):
        address = evaluate(action.address, variables)
        return backend.store(process, address, evaluate(action.value, variables) & 0xFF)
    if isinstance(action, ast.Load):
        return backend.load(process, evaluate(action.address, variables))
    if isinstance(action, ast.Call):
        args = [evaluate(arg, variables) for arg in action.args]
        if action.name == "fork":
            if statement.creates is None:
                raise ScenarioError(action.line, action.col, "fork without a process name")
            return backend.fork(process, statement.creates)
        return backend.syscall(process, action.name, args)
    if not isinstance(action, (ast.Num, ast.Name, ast.Unary, ast.Binary)):
        raise ScenarioError(statement.line, statement.col, "not a scenario statement")
    return CallResult("ok", _signed(evaluate(action, variables)))


def _assigned(result: CallResult) -> int:
    """The value a target variable takes: a failed call gives -1 (MAP_FAILED), as in C.

    A backend may give no value (a load that does not report the byte): then
    the variable is 0 on success.
    """
    if result.value is not None:
        return result.value & MAX_U64
    return 0 if result.result == "ok" else MAX_U64


def _signed(value: int) -> int:
    """A u64 as the signed 64-bit value a C return value would be, as CallResult keeps it."""
    return value - (1 << 64) if value >> 63 else value


def evaluate(expr: ast.HExpr, variables: dict[str, int]) -> int:
    """An expression's value as a u64; calls and loads are the statement's job, not this."""
    if isinstance(expr, ast.Num):
        return expr.value & MAX_U64
    if isinstance(expr, ast.Name):
        if expr.name in variables:
            return variables[expr.name]
        if expr.name in CONSTANTS:
            return CONSTANTS[expr.name] & MAX_U64
        raise ScenarioError(expr.line, expr.col, f"unknown identifier '{expr.name}'")
    if isinstance(expr, ast.Unary):
        operand = evaluate(expr.operand, variables)
        if expr.op == "-":
            return -operand & MAX_U64
        if expr.op == "~":
            return ~operand & MAX_U64
        return operand
    if isinstance(expr, ast.Binary):
        return _binary(expr, evaluate(expr.left, variables), evaluate(expr.right, variables))
    raise ScenarioError(expr.line, expr.col, "a call or memory read inside an expression")


def _binary(expr: ast.Binary, left: int, right: int) -> int:
    op = expr.op
    if op in ("/", "%") and right == 0:
        raise ScenarioError(expr.line, expr.col, "division by zero")
    if op in ("<<", ">>") and right >= 64:
        return 0
    if op not in _OPERATORS:
        raise ScenarioError(expr.line, expr.col, f"unsupported operator '{op}'")
    return _OPERATORS[op](left, right) & MAX_U64

"""Runs one harness test (ast.HarnessTest) against a Backend, process by process.

Ours; it models what the kselftest harness and C give a test. The test's
process runs the fixture's setup, the body, then the teardown; a fork gives
the child a copy of the parent's variables and of where it is in the code,
and the child, returning from the test, runs the teardown too, as in the
harness (tools/testing/selftests/kselftest_harness.h). A failed ASSERT_*
ends its process after the teardown (a failed setup ends it at once); a
failed EXPECT_* does not. SKIP() and anything not modelled end the test.

One process runs at a time, until it waits: in wait() for a child, or in a
loop that polls memory another process may write (an iteration that ran no
statement, only conditions, waits until one of the addresses it read is
written). Then the next process that can run does, in creation order, so
the interleaving is fixed and shown step by step. Memory contents exist
only for what the test stores and reads back: a MAP_SHARED mapping's bytes
are shared with every process, any other memory is copied at fork.

Values are 64-bit with the signedness of their C type, so `fd >= 0` and
`ptr != MAP_FAILED` compare as C does; widths below 64 bits are not modelled.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.mm_constants import PAGE_SIZE
from engine.scenario import ast
from engine.scenario.constants import CONSTANTS
from engine.scenario.errors import ScenarioError
from engine.scenario.interpret import CheckResult, StepOutcome
from engine.scenario.limits import MAX_EXECUTED_STATEMENTS, MAX_PROCESSES, MAX_U64
from engine.sim.backend import Backend, CallResult
from engine.uapi import ERRNO, MAP

PR_SET_MEMORY_MERGE = 67
ECHILD = 10
# Identifiers a harness test may use besides the scenario language's.
HARNESS_CONSTANTS: dict[str, int] = {
    "true": 1,
    "false": 0,
    "PR_SET_MEMORY_MERGE": PR_SET_MEMORY_MERGE,
    **ERRNO,
}
_UNSIGNED_CONSTANTS = frozenset({"MAP_FAILED", "NULL"})
_POINTER_CALLS = frozenset({"mmap", "mremap", "sys_mremap"})
_ORDERED = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}


@dataclass(frozen=True)
class Value:
    """A C value: its 64 bits and whether its type is signed."""

    bits: int
    signed: bool

    @property
    def number(self) -> int:
        if self.signed and self.bits >> 63:
            return self.bits - (1 << 64)
        return self.bits


@dataclass(frozen=True)
class Ref:
    """`&self->procmap` and `self`: where a struct's members live."""

    path: str


Datum = Value | Ref


@dataclass(frozen=True)
class Verdict:
    """How a test ended, as the harness reports it."""

    result: str  # "pass", "fail" or "skip"
    reason: str | None
    passed: int
    failed: int


class NotModelled(Exception):
    """Reaching something outside the model: the test is skipped, with where."""

    def __init__(self, line: int, col: int, what: str) -> None:
        super().__init__(f"not modelled: {what} at {line}:{col}")
        self.line, self.col, self.what = line, col, what


class _Stop(Exception):
    """The test ends now: a skip, a deadlock, a process killed by a signal."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class _BlockFrame:
    items: tuple[ast.Code, ...]
    index: int = 0


@dataclass
class _LoopFrame:
    loop: ast.Loop
    stage: str = "init"  # "init", "cond", "step"
    activity: int | None = None  # the process's activity when the condition last ran
    reads_from: int = 0


@dataclass
class _FunctionFrame:
    kind: str  # "setup", "body", "teardown"


_Frame = _BlockFrame | _LoopFrame | _FunctionFrame


@dataclass
class _Process:
    name: str
    pid: int
    parent: str | None
    env: dict[str, Datum] = field(default_factory=dict)
    memory: dict[int, int] = field(default_factory=dict)
    frames: list[_Frame] = field(default_factory=list)
    phases: list[tuple[str, ast.Block]] = field(default_factory=list)
    errno: int = 0
    state: str = "run"  # "run", "wait", "poll", "done"
    watch: frozenset[int] = frozenset()
    activity: int = 0
    reads: list[int] = field(default_factory=list)
    live_children: list[str] = field(default_factory=list)
    exited_children: list[int] = field(default_factory=list)
    phase: str = "setup"


class TestMachine:
    """One test's run: iterate `run()` for its steps, then read `verdict`."""

    def __init__(self, harness: ast.HarnessFile, test: ast.HarnessTest, backend: Backend) -> None:
        self.test = test
        self.backend = backend
        self.constants = {**CONSTANTS, **HARNESS_CONSTANTS, **dict(harness.constants)}
        self.members = dict(test.fixture.members) if test.fixture else {}
        self.processes: dict[str, _Process] = {}
        self.shared: list[tuple[int, int]] = []
        self.shared_memory: dict[int, int] = {}
        self.executed = 0
        self.passed = 0
        self.failed = 0
        self.first_failure: str | None = None
        self.skipped: str | None = None
        self.verdict: Verdict | None = None
        self._calls: list[CallResult] = []
        self._fork: tuple[str, int] | None = None
        self._at: tuple[int, int] = (test.line, test.col)

    # --- the schedule ---------------------------------------------------------

    def run(self) -> Iterator[StepOutcome]:
        """Every step of every process, in the order they ran; sets `verdict` at the end."""
        main = _Process("main", 0, None)
        main.env["self"] = Ref("self")
        fixture = self.test.fixture
        if fixture is not None and fixture.setup is not None:
            main.phases.append(("setup", fixture.setup))
        main.phases.append(("body", self.test.body))
        if fixture is not None and fixture.teardown is not None:
            main.phases.append(("teardown", fixture.teardown))
        self.processes["main"] = main
        current = main
        try:
            while True:
                outcome = self._tick(current)
                if outcome is not None:
                    yield outcome
                    continue
                following = self._next(current)
                if following is None:
                    break
                current = following
        except NotModelled as missing:
            self._end("skip", str(missing))
            return
        except _Stop as stop:
            self._end(stop.result, stop.reason)
            return
        except ScenarioError as err:
            self._end("fail", str(err))
            raise
        if self.skipped is not None:
            self._end("skip", self.skipped)
        else:
            self._end("pass", None)

    def _end(self, result: str, reason: str | None) -> None:
        """The verdict: any failed assertion fails the test, whatever ended it."""
        if result != "skip" and self.failed:
            result, reason = "fail", reason if result == "fail" else self.first_failure
        self.verdict = Verdict(result, reason, self.passed, self.failed)

    def _next(self, current: _Process) -> _Process | None:
        """The next process that can run, after `current` in creation order."""
        order = list(self.processes.values())
        start = order.index(current)
        for process in order[start + 1 :] + order[: start + 1]:
            if process.state == "run":
                return process
        waiting = [p for p in order if p.state != "done"]
        if not waiting:
            return None
        how = ", ".join(
            f"{p.name} in wait()" if p.state == "wait" else f"{p.name} polling memory"
            for p in waiting
        )
        raise _Stop("fail", f"deadlock: every process waits ({how})")

    # --- one process ----------------------------------------------------------

    def _tick(self, p: _Process) -> StepOutcome | None:
        """Run p until it makes one step, waits or ends (then None)."""
        while p.state == "run":
            self.executed += 1
            if self.executed > MAX_EXECUTED_STATEMENTS:
                raise ScenarioError(
                    *self._at,
                    f"the test ran too long (limit MAX_EXECUTED_STATEMENTS = "
                    f"{MAX_EXECUTED_STATEMENTS})",
                )
            if not p.frames:
                self._next_phase(p)
                continue
            frame = p.frames[-1]
            if isinstance(frame, _FunctionFrame):
                p.frames.pop()
                continue
            if isinstance(frame, _LoopFrame):
                outcome = self._loop(p, frame)
                if outcome is not None:
                    return outcome
                continue
            if frame.index >= len(frame.items):
                p.frames.pop()
                continue
            item = frame.items[frame.index]
            frame.index += 1
            outcome = self._code(p, item)
            if outcome is not None:
                return outcome
        return None

    def _next_phase(self, p: _Process) -> None:
        if not p.phases:
            self._exit(p)
            return
        p.phase, block = p.phases.pop(0)
        p.frames = [_FunctionFrame(p.phase), _BlockFrame(block.items)]

    def _exit(self, p: _Process) -> None:
        p.state = "done"
        parent = self.processes.get(p.parent) if p.parent else None
        if parent is not None and p.name in parent.live_children:
            parent.live_children.remove(p.name)
            parent.exited_children.append(p.pid)
            if parent.state == "wait":
                parent.state = "run"

    def _code(self, p: _Process, item: ast.Code) -> StepOutcome | None:
        if isinstance(item, ast.Block):
            p.frames.append(_BlockFrame(item.items))
            return None
        self._at = (item.line, item.col) if not isinstance(item, ast.Block) else self._at
        if isinstance(item, ast.Step):
            return self._step(p, item)
        if isinstance(item, ast.Check):
            return self._check(p, item)
        if isinstance(item, ast.If):
            value, outcome = self._condition(p, item.cond, item.head, item.line, item.col)
            branch = item.then if value else item.orelse
            if branch is not None:
                p.frames.append(_BlockFrame(branch.items))
            return outcome
        if isinstance(item, ast.Loop):
            p.frames.append(_LoopFrame(item))
            return None
        if isinstance(item, ast.Jump):
            self._jump(p, item)
            return None
        if isinstance(item, ast.Skip):
            if self.skipped is None:
                self.skipped = f"{item.reason or 'SKIP()'} (SKIP at {item.line}:{item.col})"
            self._return(p)
            return None
        raise NotModelled(item.line, item.col, item.what)

    def _jump(self, p: _Process, jump: ast.Jump) -> None:
        if jump.kind == "return":
            self._return(p)
            return
        while p.frames and not isinstance(p.frames[-1], _LoopFrame):
            if isinstance(p.frames[-1], _FunctionFrame):
                raise ScenarioError(jump.line, jump.col, f"'{jump.kind}' outside a loop")
            p.frames.pop()
        if not p.frames:
            raise ScenarioError(jump.line, jump.col, f"'{jump.kind}' outside a loop")
        loop = p.frames[-1]
        assert isinstance(loop, _LoopFrame)
        if jump.kind == "break":
            p.frames.pop()
        else:
            loop.stage = "step"

    def _return(self, p: _Process) -> None:
        while p.frames:
            if isinstance(p.frames.pop(), _FunctionFrame):
                break

    def _loop(self, p: _Process, frame: _LoopFrame) -> StepOutcome | None:
        loop = frame.loop
        if frame.stage == "init":
            frame.stage = "cond" if loop.kind != "do" else "body"
            if loop.init is not None:
                p.frames.append(_BlockFrame((loop.init,)))
            return None
        if frame.stage == "step":
            frame.stage = "cond"
            if loop.step is not None:
                p.frames.append(_BlockFrame((loop.step,)))
            return None
        if frame.stage == "body":
            frame.stage = "step"
            p.frames.append(_BlockFrame(loop.body.items))
            return None
        if frame.activity == p.activity:
            self._wait_for_memory(p, frame)
            frame.activity = None
            return None
        frame.activity = p.activity
        frame.reads_from = len(p.reads)
        self._at = (loop.line, loop.col)
        if loop.cond is None:
            value, outcome = True, None
        else:
            value, outcome = self._condition(p, loop.cond, loop.head, loop.line, loop.col)
        if value:
            frame.stage = "step"
            p.frames.append(_BlockFrame(loop.body.items))
        else:
            p.frames.pop()
        return outcome

    def _wait_for_memory(self, p: _Process, frame: _LoopFrame) -> None:
        """An iteration that only read memory: wait until another process writes it."""
        watch = frozenset(a for a in p.reads[frame.reads_from :] if self._is_shared(a))
        if not watch:
            loop = frame.loop
            raise _Stop(
                "fail",
                f"the loop at {loop.line}:{loop.col} never ends: it reads nothing "
                "another process writes",
            )
        p.state, p.watch = "poll", watch
        del p.reads[frame.reads_from :]

    # --- statements -----------------------------------------------------------

    def _condition(
        self, p: _Process, cond: ast.HExpr, head: str, line: int, col: int
    ) -> tuple[bool, StepOutcome | None]:
        """A condition's truth; one step of its own when it made a call."""
        self._calls = []
        value = self._number(p, cond)
        if not self._calls:
            return value != 0, None
        return value != 0, self._outcome(p, line, col, head, cond)

    def _step(self, p: _Process, step: ast.Step) -> StepOutcome | None:
        waits = isinstance(step.value, ast.Call) and step.value.name == "wait"
        if waits and not p.exited_children and p.live_children:
            frame = p.frames[-1]
            assert isinstance(frame, _BlockFrame)
            frame.index -= 1  # run the wait() again when a child has exited
            p.state = "wait"
            return None
        p.activity += 1
        self._calls = []
        self._fork = None
        value = self._eval(p, step.value)
        if step.target is not None:
            if step.op != "=":
                value = self._binary(step.op[:-1], self._load(p, step.target), value, step)
            self._assign(p, step.target, value, step.signed)
        creates = None
        if self._fork is not None:
            creates = self._spawn(p, step)
        return self._outcome(p, step.line, step.col, step.source, step.value, creates)

    def _check(self, p: _Process, check: ast.Check) -> StepOutcome:
        p.activity += 1
        self._calls = []
        left = self._value(p, check.left)
        right = self._value(p, check.right) if check.right is not None else None
        op = check.macro.split("_", 1)[1]
        if right is None:
            passed = (left.bits != 0) == (op == "TRUE")
        else:
            passed = bool(self._compare(_CHECK_BINARY[op], left, right).bits)
        result = CheckResult(
            check.macro,
            passed,
            check.left_text,
            check.right_text,
            left.number,
            right.number if right is not None else None,
        )
        if passed:
            self.passed += 1
        else:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = f"{p.name}: {result.describe()} at {check.line}:{check.col}"
            if check.macro.startswith("ASSERT"):
                self._assert_failed(p)
        return self._outcome(p, check.line, check.col, check.source, check.left, check=result)

    def _assert_failed(self, p: _Process) -> None:
        """As the harness's __bail(): the teardown runs, then the process ends."""
        p.frames = []
        teardown = [phase for phase in p.phases if phase[0] == "teardown"]
        p.phases = [] if p.phase in ("setup", "teardown") else teardown

    def _outcome(
        self,
        p: _Process,
        line: int,
        col: int,
        source: str,
        action: ast.HExpr,
        creates: str | None = None,
        check: CheckResult | None = None,
    ) -> StepOutcome:
        failed = [c for c in self._calls if c.result != "ok"]
        result = (
            failed[-1] if failed else (self._calls[-1] if self._calls else CallResult("ok", None))
        )
        statement = ast.Statement(line, col, source, p.name, None, action, creates)
        return StepOutcome(statement, result, check, p.phase)

    def _spawn(self, parent: _Process, step: ast.Step) -> str:
        assert self._fork is not None
        name, pid = self._fork
        child = _Process(name, pid, parent.name)
        child.env = dict(parent.env)
        child.memory = dict(parent.memory)
        child.frames = copy.deepcopy(parent.frames)
        child.phases = list(parent.phases)
        child.phase = parent.phase
        child.errno = parent.errno
        if step.target is not None:
            self._assign(child, step.target, Value(0, True), step.signed)
        parent.live_children.append(name)
        self.processes[name] = child
        return name

    # --- values ---------------------------------------------------------------

    def _number(self, p: _Process, expr: ast.HExpr) -> int:
        return self._value(p, expr).bits

    def _value(self, p: _Process, expr: ast.HExpr) -> Value:
        datum = self._eval(p, expr)
        if isinstance(datum, Ref):
            raise ScenarioError(expr.line, expr.col, "a struct where a number is needed")
        return datum

    def _eval(self, p: _Process, expr: ast.HExpr) -> Datum:
        if isinstance(expr, ast.Num):
            return Value(expr.value & MAX_U64, True)
        if isinstance(expr, ast.Name):
            return self._name(p, expr)
        if isinstance(expr, ast.Cast):
            inner = self._eval(p, expr.operand)
            return inner if isinstance(inner, Ref) else Value(inner.bits, expr.signed)
        if isinstance(expr, ast.Member):
            return p.env.get(self._path(p, expr), Value(0, self.members.get(expr.field, True)))
        if isinstance(expr, ast.AddressOf):
            if isinstance(expr.operand, (ast.Member, ast.Name)):
                return Ref(self._path(p, expr.operand))
            raise NotModelled(expr.line, expr.col, "'&' of this expression")
        if isinstance(expr, ast.Load):
            return Value(self._read(p, expr), True)
        if isinstance(expr, ast.Unary):
            return self._unary(p, expr)
        if isinstance(expr, ast.Binary):
            return self._binary_expr(p, expr)
        if isinstance(expr, ast.Call):
            return self._call(p, expr)
        raise NotModelled(expr.line, expr.col, "a string outside SKIP()")

    def _name(self, p: _Process, expr: ast.Name) -> Datum:
        name = expr.name
        if name in p.env:
            return p.env[name]
        if name == "errno":
            return Value(p.errno, True)
        if name in self.constants:
            return Value(self.constants[name] & MAX_U64, name not in _UNSIGNED_CONSTANTS)
        raise ScenarioError(expr.line, expr.col, f"'{name}' is used before it is assigned")

    def _path(self, p: _Process, expr: ast.HExpr) -> str:
        """Where a variable or member lives: `ptr`, `self.page_size`, `self.procmap.query.vma_end`."""
        if isinstance(expr, ast.Name):
            return expr.name
        if isinstance(expr, ast.Member):
            if expr.arrow:
                base = self._eval(p, expr.base)
                if not isinstance(base, Ref):
                    raise NotModelled(expr.line, expr.col, f"'->{expr.field}' of a pointer")
                return f"{base.path}.{expr.field}"
            return f"{self._path(p, expr.base)}.{expr.field}"
        raise NotModelled(expr.line, expr.col, "this as a variable")

    def _assign(self, p: _Process, target: ast.HExpr, value: Datum, signed: bool | None) -> None:
        if isinstance(target, ast.Load):
            if isinstance(value, Ref):
                raise NotModelled(target.line, target.col, "a struct stored to memory")
            self._write(p, target, value.bits)
            return
        if isinstance(value, Value) and signed is not None:
            value = Value(value.bits, signed)
        p.env[self._path(p, target)] = value

    def _load(self, p: _Process, target: ast.HExpr) -> Value:
        return self._value(p, target)

    def _unary(self, p: _Process, expr: ast.Unary) -> Value:
        operand = self._value(p, expr.operand)
        if expr.op == "-":
            return Value(-operand.bits & MAX_U64, operand.signed)
        if expr.op == "~":
            return Value(~operand.bits & MAX_U64, operand.signed)
        if expr.op == "!":
            return Value(int(operand.bits == 0), True)
        return operand

    def _binary_expr(self, p: _Process, expr: ast.Binary) -> Value:
        if expr.op in ("&&", "||"):
            first = self._number(p, expr.left) != 0
            if first == (expr.op == "||"):
                return Value(int(first), True)
            return Value(int(self._number(p, expr.right) != 0), True)
        left = self._value(p, expr.left)
        right = self._value(p, expr.right)
        return self._binary(expr.op, left, right, expr)

    def _binary(self, op: str, left: Datum, right: Datum, where: ast.Step | ast.Binary) -> Value:
        if isinstance(left, Ref) or isinstance(right, Ref):
            raise NotModelled(where.line, where.col, "arithmetic on a struct")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return self._compare(op, left, right)
        signed = left.signed and right.signed
        a, b = (left.number, right.number) if signed else (left.bits, right.bits)
        if op in ("/", "%") and b == 0:
            raise ScenarioError(where.line, where.col, "division by zero")
        if op in ("<<", ">>") and right.bits >= 64:
            return Value(0, signed)
        if op == "/":
            quotient = abs(a) // abs(b)
            result = -quotient if (a < 0) != (b < 0) else quotient
        elif op == "%":
            result = a - b * (abs(a) // abs(b) * (-1 if (a < 0) != (b < 0) else 1))
        else:
            result = _ARITHMETIC[op](a, b)
        return Value(result & MAX_U64, signed)

    def _compare(self, op: str, left: Value, right: Value) -> Value:
        signed = left.signed and right.signed
        a, b = (left.number, right.number) if signed else (left.bits, right.bits)
        if op == "==":
            return Value(int(a == b), True)
        if op == "!=":
            return Value(int(a != b), True)
        return Value(int(getattr(a, _ORDERED[op])(b)), True)

    # --- memory ---------------------------------------------------------------

    def _is_shared(self, addr: int) -> bool:
        return any(start <= addr < end for start, end in self.shared)

    def _read(self, p: _Process, load: ast.Load) -> int:
        addr = self._number(p, load.address)
        self._kernel(p, self.backend.load(p.name, addr), load)
        p.reads.append(addr)
        memory = self.shared_memory if self._is_shared(addr) else p.memory
        return memory.get(addr, 0)

    def _write(self, p: _Process, load: ast.Load, value: int) -> None:
        addr = self._number(p, load.address)
        self._kernel(p, self.backend.store(p.name, addr, value & 0xFF), load)
        if self._is_shared(addr):
            self.shared_memory[addr] = value
            for other in self.processes.values():
                if other.state == "poll" and addr in other.watch:
                    other.state, other.watch = "run", frozenset()
        else:
            p.memory[addr] = value

    def _kernel(self, p: _Process, result: CallResult, where: ast.HExpr) -> CallResult:
        """A backend call's result: errno is set; a signal kills the test."""
        self._calls.append(result)
        if result.result.startswith("SIG"):
            raise _Stop("fail", f"{p.name} killed by {result.result} at {where.line}:{where.col}")
        if result.result != "ok":
            p.errno = ERRNO.get(result.result, 0)
        return result

    # --- calls ----------------------------------------------------------------

    def _call(self, p: _Process, call: ast.Call) -> Datum:
        name = call.name
        if name == "fork":
            return self._do_fork(p, call)
        if name in ("open_self_procmap", "close_procmap", "find_vma_procmap"):
            return self._procmap(p, call)
        args = [self._eval(p, arg) for arg in call.args]
        numbers = []
        for arg, datum in zip(call.args, args, strict=True):
            if isinstance(datum, Ref):
                raise NotModelled(arg.line, arg.col, f"a struct passed to {name}()")
            numbers.append(datum.bits)
        if name in ("psize", "getpagesize"):
            return Value(PAGE_SIZE, True)
        if name == "wait":
            if not p.exited_children:
                p.errno = ECHILD
                return Value(MAX_U64, True)
            return Value(p.exited_children.pop(0), True)
        if name == "prctl":
            if numbers[0] == PR_SET_MEMORY_MERGE and numbers[1] == 0:
                return Value(0, True)  # KSM merging off: the model never has it on
            raise NotModelled(call.line, call.col, f"prctl({self._text(call)})")
        if name == "sys_mremap":
            name = "mremap"
        result = self._kernel(p, self.backend.syscall(p.name, name, numbers), call)
        shared = numbers[3] & 0x3 if name == "mmap" else 0
        if result.result == "ok" and shared in (MAP["MAP_SHARED"], MAP["MAP_SHARED_VALIDATE"]):
            self.shared.append((result.value or 0, (result.value or 0) + numbers[1]))
        bits = (result.value if result.value is not None else -1) & MAX_U64
        if result.result != "ok":
            bits = MAX_U64
        return Value(bits, name not in _POINTER_CALLS)

    def _text(self, call: ast.Call) -> str:
        names = {v: k for k, v in self.constants.items() if k.startswith("PR_")}
        shown = []
        for arg in call.args:
            if isinstance(arg, ast.Name):
                shown.append(arg.name)
            elif isinstance(arg, ast.Num):
                shown.append(names.get(arg.value, str(arg.value)) if not shown else str(arg.value))
            else:
                shown.append("...")
        return ", ".join(shown)

    def _do_fork(self, p: _Process, call: ast.Call) -> Value:
        if len(self.processes) >= MAX_PROCESSES:
            raise ScenarioError(
                call.line, call.col, f"too many processes (limit MAX_PROCESSES = {MAX_PROCESSES})"
            )
        name = self._child_name(p)
        result = self._kernel(p, self.backend.fork(p.name, name), call)
        if result.result != "ok":
            return Value(MAX_U64, True)
        self._fork = (name, result.value or 0)
        return Value((result.value or 0) & MAX_U64, True)

    def _child_name(self, p: _Process) -> str:
        """A forked process is named after the variable its pid goes to, as in scenarios."""
        frame = p.frames[-1] if p.frames else None
        target = None
        if isinstance(frame, _BlockFrame) and frame.index:
            step = frame.items[frame.index - 1]
            if isinstance(step, ast.Step) and isinstance(step.target, ast.Name):
                target = step.target.name
        if target is not None and target not in self.processes:
            return target
        base, number = target or "child", 1
        while f"{base}{number}" in self.processes:
            number += 1
        return f"{base}{number}"

    def _procmap(self, p: _Process, call: ast.Call) -> Value:
        """vm_util.c's PROCMAP_QUERY helpers: the fd is /proc/self/maps of whoever opened it."""
        ref = self._eval(p, call.args[0])
        if not isinstance(ref, Ref):
            raise NotModelled(call.line, call.col, f"{call.name}() of a pointer value")
        owner_key = f"{ref.path}.fd"
        if call.name == "open_self_procmap":
            p.env[owner_key] = Value(p.pid, True)
            p.env[f"{ref.path}.owner"] = Ref(p.name)
            return Value(0, True)
        owner = p.env.get(f"{ref.path}.owner")
        if call.name == "close_procmap":
            if owner is None:
                return Value(-9 & MAX_U64, True)  # -EBADF
            del p.env[f"{ref.path}.owner"]
            return Value(0, True)
        if not isinstance(owner, Ref):
            raise ScenarioError(
                call.line, call.col, "find_vma_procmap() before open_self_procmap()"
            )
        addr = self._number(p, call.args[1])
        p.activity += 1
        found = self.backend.procmap_query(owner.path, addr)
        if found is None:
            return Value(0, True)
        p.env[f"{ref.path}.query.vma_start"] = Value(found[0], False)
        p.env[f"{ref.path}.query.vma_end"] = Value(found[1], False)
        return Value(1, True)


_CHECK_BINARY = {"EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}
_ARITHMETIC = {
    "+": int.__add__,
    "-": int.__sub__,
    "*": int.__mul__,
    "<<": int.__lshift__,
    ">>": int.__rshift__,
    "|": int.__or__,
    "&": int.__and__,
    "^": int.__xor__,
}

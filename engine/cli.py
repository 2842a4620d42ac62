"""The command line: run a scenario, check it against the host kernel, list the gallery.

Ours. Exit codes, so scripts can tell the cases apart:
0 done (verify: the kernels agree), 1 verify found differences,
2 the scenario does not parse (or cannot be read), 3 the run stopped on a
limit or a scenario error after the statements it printed, 4 verify cannot
check this scenario here (a call or flag mainline does not have, a host that
is not Linux, no C compiler for the executor).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

from engine.present.report import write_json
from engine.present.statement import render_statement, step_lines
from engine.present.text import WIDTH, fit
from engine.scenario import ast
from engine.scenario.errors import ScenarioError
from engine.scenario.parse import parse
from engine.sim.backend import CallResult
from engine.sim.simulation import Run, run_scenario
from engine.uapi import MREMAP
from engine.verify.compare import compare
from engine.verify.real import NotMainline, RealMachine, RealMachineError
from engine.verify.steps import recorded, simulated

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_PARSE = 2
EXIT_STOPPED = 3
EXIT_UNCHECKABLE = 4

PROPOSED_FLAGS = ("MREMAP_RELOCATE_ANON", "MREMAP_MUST_RELOCATE_ANON")
PROPOSED_MASK = MREMAP["MREMAP_RELOCATE_ANON"] | MREMAP["MREMAP_MUST_RELOCATE_ANON"]
UNFINISHED_SHOWN = 20  # inner steps of a statement a limit cut short


class _Failure(Exception):
    """A message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the command, return its exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
    except _Failure as failure:
        sys.stdout.flush()
        print(failure, file=sys.stderr)
        return failure.code
    except BrokenPipeError:  # `... | head`: the reader has seen enough
        sys.stderr.close()
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mremap-viz",
        description="Step through Linux mremap() and the MREMAP_RELOCATE_ANON series.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a scenario on the simulated kernel")
    run.add_argument("file", metavar="FILE", help="the scenario; - reads standard input")
    run.add_argument("--json", action="store_true", help="print the JSON contract instead")
    run.set_defaults(command=_run)
    verify = commands.add_parser(
        "verify", help="run a scenario on this machine's kernel too, and compare"
    )
    verify.add_argument("file", metavar="FILE", help="the scenario; - reads standard input")
    verify.set_defaults(command=_verify)
    listing = commands.add_parser("list", help="list the gallery's scenarios")
    listing.set_defaults(command=_list)
    return parser


def _load(path: str) -> tuple[str, ast.Scenario]:
    """The scenario's display name and its parse; errors as FILE:LINE:COL."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            source = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                source = f.read()
    except OSError as e:
        raise _Failure(f"{name}: cannot read: {e.strerror}", EXIT_PARSE) from None
    try:
        return name, parse(source)
    except ScenarioError as e:
        raise _Failure(f"{name}:{e.line}:{e.col}: {e.message}", EXIT_PARSE) from None


def _run(args: argparse.Namespace) -> int:
    name, scenario = _load(args.file)
    run = run_scenario(scenario)
    if args.json:
        write_json(run, sys.stdout)
        print()
    else:
        for i in range(len(run.statements)):
            print(render_statement(run, i, inner=True))
            print()
        _print_unfinished(run)
    if run.error is not None:
        raise _Failure(f"{name}: stopped: {run.error}", EXIT_STOPPED)
    return EXIT_OK


def _print_unfinished(run: Run) -> None:
    """The last inner steps of a statement a limit stopped, so the cause shows."""
    done = run.statements[-1].last if run.statements else 0
    unfinished = run.steps[done:]
    if run.error is None or not unfinished:
        return
    print(f"unfinished statement: {len(unfinished)} inner steps ran, the last ones:")
    lines: list[str] = []
    for step in unfinished[-UNFINISHED_SHOWN:]:
        lines += step_lines(step.function, step.summary, step.events, step.warnings)
    print("\n".join(fit(lines)))


def _list(args: argparse.Namespace) -> int:
    """Each packaged scenario's file name and its `// Title:` line."""
    folder = resources.files("engine").joinpath("scenarios")
    files = (
        sorted((f for f in folder.iterdir() if f.name.endswith(".c")), key=lambda f: f.name)
        if folder.is_dir()
        else []
    )
    if not files:
        print("no gallery scenarios are packaged yet")
    titles = [(f.name, _title(f.read_text(encoding="utf-8"))) for f in files]
    width = max((len(name) for name, _ in titles), default=0)
    lines = [f"{name:<{width}}  {title}" for name, title in titles]
    if any(len(line) > WIDTH for line in lines):  # then each title under its name
        lines = fit(line for name, title in titles for line in (name, "  " + title))
    print("\n".join(lines))
    return EXIT_OK


def _title(text: str) -> str:
    """The `// Title: ...` first line's text."""
    first = text.split("\n", 1)[0].strip()
    return first.removeprefix("//").strip().removeprefix("Title:").strip()


# --- verify ---------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    """Run on the model and on this machine's kernel; print what differs."""
    if not sys.platform.startswith("linux"):
        raise _Failure("verify runs the scenario on a Linux kernel: this host is not Linux", 4)
    name, scenario = _load(args.file)
    used = sorted(_proposed_flags(scenario))
    if used:
        raise _proposed(name, " and ".join(used))
    run = run_scenario(scenario)
    sim_steps = simulated(run)
    real_steps = _real_steps(name, scenario)
    return _report(run, sim_steps, real_steps)


def _proposed(name: str, flags: str) -> _Failure:
    return _Failure(
        f"{name}: {flags} exist only in the proposed RELOCATE_ANON series,"
        " not in mainline: a mainline kernel cannot check them",
        EXIT_UNCHECKABLE,
    )


def _real_steps(name: str, scenario: ast.Scenario) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    try:
        with RealMachine() as machine:
            steps = recorded(scenario, _MainlineOnly(name, machine))
    except NotMainline as e:
        raise _Failure(f"{name}: {e}: only the simulated kernel has it", EXIT_UNCHECKABLE) from None
    except RealMachineError as e:
        raise _Failure(f"{name}: cannot run on this kernel: {e}", EXIT_UNCHECKABLE) from None
    return steps


def _report(
    run: Run, sim_steps: list[dict[str, object]], real_steps: Sequence[Mapping[str, Any]]
) -> int:
    differences = compare(sim_steps, real_steps)
    if run.error is not None:
        print(f"the simulated run stopped: {run.error}")
    if differences:
        for difference in differences:
            print("\n".join(fit([str(difference)])))
        print(f"{len(differences)} difference{'s' if len(differences) > 1 else ''}")
        return EXIT_DIFFERENT
    print(f"engine and kernel agree on {len(sim_steps)} statements")
    return EXIT_OK


def _proposed_flags(scenario: ast.Scenario) -> set[str]:
    """The proposed series' flag names a scenario mentions anywhere."""
    return {n.name for s in scenario.statements for n in _names(s.action)} & set(PROPOSED_FLAGS)


def _names(node: ast.Expr | ast.Store) -> Iterator[ast.Name]:
    if isinstance(node, ast.Name):
        yield node
    elif isinstance(node, ast.Unary):
        yield from _names(node.operand)
    elif isinstance(node, ast.Binary):
        yield from _names(node.left)
        yield from _names(node.right)
    elif isinstance(node, ast.Call):
        for arg in node.args:
            yield from _names(arg)
    elif isinstance(node, ast.Load):
        yield from _names(node.address)
    elif isinstance(node, ast.Store):
        yield from _names(node.address)
        yield from _names(node.value)


class _MainlineOnly:
    """RealMachine, refusing an mremap whose flags carry the proposed bits
    however they were spelt (a literal 8 is EINVAL on mainline, not a check)."""

    def __init__(self, name: str, machine: RealMachine) -> None:
        self._name = name
        self._machine = machine

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        if name == "mremap" and len(args) > 3 and args[3] & PROPOSED_MASK:
            raise _proposed(self._name, f"mremap flags {args[3]:#x}: bits {PROPOSED_MASK:#x}")
        return self._machine.syscall(process, name, args)

    def fork(self, parent: str, child: str) -> CallResult:
        return self._machine.fork(parent, child)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        return self._machine.store(process, addr, value)

    def load(self, process: str, addr: int) -> CallResult:
        return self._machine.load(process, addr)

    def maps(self) -> dict[str, list[str]]:
        return self._machine.maps()

    def resident(self) -> dict[str, dict[str, int]]:
        return self._machine.resident()

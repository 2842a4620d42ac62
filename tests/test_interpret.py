"""The interpreter: evaluated arguments, dispatch to the backend, and what variables become."""

import pytest

from engine.mm_constants import PAGE_SIZE
from engine.scenario.errors import ScenarioError
from engine.scenario.interpret import StepOutcome, run, step_record
from engine.scenario.parse import parse
from engine.sim.backend import CallResult
from tests.support.data import language_example

U64 = (1 << 64) - 1
MAP_FIXED = 0x10


class FakeBackend:
    """Records every call; mmap hands out addresses top-down, so results depend on the inputs."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.failing = failing
        self.top = 0x7FFF_F000_0000
        self.pids = 100

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        self.calls.append((process, name, *args))
        if name in self.failing:
            return CallResult("EINVAL", -1)
        if name == "mmap":
            addr, length, _prot, flags = args[:4]
            if flags & MAP_FIXED:
                return CallResult("ok", addr)
            self.top -= length
            return CallResult("ok", self.top)
        if name == "mremap":
            return CallResult("ok", args[4] if len(args) == 5 else args[0])
        return CallResult("ok", 0)

    def fork(self, parent: str, child: str) -> CallResult:
        self.calls.append((parent, "fork", child))
        self.pids += 1
        return CallResult("ok", self.pids)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        self.calls.append((process, "store", addr, value))
        return CallResult("SIGSEGV" if "store" in self.failing else "ok", None)

    def load(self, process: str, addr: int) -> CallResult:
        self.calls.append((process, "load", addr))
        return CallResult("SIGSEGV" if "load" in self.failing else "ok", None)

    def maps(self) -> dict[str, list[str]]:
        return {}


def execute(
    source: str, backend: FakeBackend | None = None
) -> tuple[FakeBackend, list[StepOutcome]]:
    backend = backend or FakeBackend()
    return backend, list(run(parse(source), backend))


def values(source: str) -> list[int | None]:
    """What each statement reports as its value."""
    return [outcome.result.value for outcome in execute(source)[1]]


def test_reference_example_calls() -> None:
    backend, outcomes = execute(language_example())
    carveout = 0x7FFF_F000_0000 - 30 * PAGE_SIZE
    ptr = carveout + PAGE_SIZE
    ptr2 = carveout + 20 * PAGE_SIZE
    anon_private = 0x02 | 0x20
    assert backend.calls == [
        ("main", "mmap", 0, 30 * PAGE_SIZE, 0, anon_private, U64, 0),
        ("main", "mmap", ptr, 5 * PAGE_SIZE, 3, anon_private | MAP_FIXED, U64, 0),
        ("main", "mmap", ptr2, 5 * PAGE_SIZE, 3, anon_private | MAP_FIXED, U64, 0),
        ("main", "memset", ptr, ord("x"), 5 * PAGE_SIZE),
        ("main", "memset", ptr2, ord("y"), 5 * PAGE_SIZE),
        ("main", "mremap", ptr2, 5 * PAGE_SIZE, 5 * PAGE_SIZE, 1 | 2 | 8, ptr + 5 * PAGE_SIZE),
    ]
    assert [o.result.result for o in outcomes] == ["ok"] * 6
    assert outcomes[-1].result.value == ptr + 5 * PAGE_SIZE


def test_step_record() -> None:
    _, outcomes = execute(
        "pid_t child = fork();\nchild:  char *p = mmap(0, page_size, PROT_READ, 0x22, -1, 0);"
    )
    assert [step_record(outcome) for outcome in outcomes] == [
        {"line": 1, "source": "pid_t child = fork();", "process": "main", "result": "ok",
         "value": 101},
        {"line": 2, "source": "char *p = mmap(0, page_size, PROT_READ, 0x22, -1, 0);",
         "process": "child", "result": "ok", "value": 0x7FFF_F000_0000 - PAGE_SIZE},
    ]  # fmt: skip


def test_forks_and_labels_dispatch_to_processes() -> None:
    backend, _ = execute(
        "char *p = mmap(0, page_size, PROT_READ | PROT_WRITE, 0x22, -1, 0);\n"
        "pid_t child = fork();\n"
        "child: memset(p, 'z', page_size);\n"
        "child: pid_t grandchild = fork();\n"
        "grandchild: fork();\n"
        "main: munmap(p, page_size);\n"
    )
    p = 0x7FFF_F000_0000 - PAGE_SIZE
    assert backend.calls[1:] == [
        ("main", "fork", "child"),
        ("child", "memset", p, ord("z"), PAGE_SIZE),
        ("child", "fork", "grandchild"),
        ("grandchild", "fork", "child1"),
        ("main", "munmap", p, PAGE_SIZE),
    ]


def test_variables_are_shared_by_all_processes() -> None:
    backend, _ = execute(
        "pid_t child = fork();\n"
        "child: char *q = mmap(0, page_size, PROT_READ, 0x22, -1, 0);\n"
        "munmap(q, child);\n"
    )
    q = 0x7FFF_F000_0000 - PAGE_SIZE
    assert backend.calls[-1] == ("main", "munmap", q, 101)


def test_failed_call_assigns_minus_one_and_the_scenario_goes_on() -> None:
    backend, outcomes = execute(
        "char *p = mmap(0, page_size, PROT_READ, 0x22, -1, 0);\nmunmap(p + 1, 2);",
        FakeBackend(failing=frozenset({"mmap"})),
    )
    assert [o.result for o in outcomes] == [CallResult("EINVAL", -1), CallResult("ok", 0)]
    assert backend.calls[-1] == ("main", "munmap", 0, 2)


def test_stores_and_loads() -> None:
    backend, outcomes = execute(
        "char *p = mmap(0, 2 * page_size, PROT_READ | PROT_WRITE, 0x22, -1, 0);\n"
        "p[page_size + 1] = 0x1234;\n"
        "*(p + 2) = -1;\n"
        "*p = 'q';\n"
        "char c = p[3];\n"
        "munmap(&p[c], 1);\n"
        "*(volatile char *)(p + 5);\n"
    )
    p = 0x7FFF_F000_0000 - 2 * PAGE_SIZE
    assert backend.calls[1:] == [
        ("main", "store", p + PAGE_SIZE + 1, 0x34),
        ("main", "store", p + 2, 0xFF),
        ("main", "store", p, ord("q")),
        ("main", "load", p + 3),
        ("main", "munmap", p, 1),  # a load that reports no byte leaves 0
        ("main", "load", p + 5),
    ]
    assert [o.result.value for o in outcomes[1:]] == [None, None, None, None, 0, None]


def test_failed_load_assigns_minus_one() -> None:
    backend, outcomes = execute(
        "char c = *(char *)4096;\nmunmap(c, 1);", FakeBackend(failing=frozenset({"load"}))
    )
    assert outcomes[0].result == CallResult("SIGSEGV", None)
    assert backend.calls[-1] == ("main", "munmap", U64, 1)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("0 - 1", U64),
        ("-1", U64),
        ("~0", U64),
        ("+5", 5),
        ("0xffffffffffffffff + 2", 1),
        ("1 << 63 << 1", 0),
        ("1 << 64", 0),
        ("1 << -1", 0),
        ("-8 >> 60", 15),
        ("-8 / 2", (U64 - 7) // 2),
        ("17 % 5", 2),
        ("0xf0 | 0x0f", 0xFF),
        ("0xf0 & 0x3c", 0x30),
        ("0xff ^ 0x0f", 0xF0),
        ("PROT_READ | PROT_WRITE", 3),
        ("MAP_FAILED", U64),
        ("'a' + 1", 98),
        ("(char)300", 300),
    ],
)
def test_arithmetic_is_unsigned_64_bit(expression: str, value: int) -> None:
    backend, _ = execute(f"unsigned long x = {expression};\nmunmap(x, 0);")
    assert backend.calls == [("main", "munmap", value, 0)]


def test_assignment_reports_its_value_as_a_c_long() -> None:
    assert values("x = 4096;\ny = x - 4097;\nz = y + 2;") == [4096, -1, 1]


@pytest.mark.parametrize("op", ["/", "%"])
def test_division_by_zero_stops_at_the_operator(op: str) -> None:
    backend = FakeBackend()
    steps = run(parse(f"x = 0;\nmunmap(0, 1);\n  y = 4 {op} (x + x);\nmunmap(0, 2);"), backend)
    assert next(steps).result == CallResult("ok", 0)
    assert next(steps).result == CallResult("ok", 0)
    with pytest.raises(ScenarioError) as info:
        next(steps)
    assert (info.value.line, info.value.col, info.value.message) == (3, 9, "division by zero")
    assert backend.calls == [("main", "munmap", 0, 1)]

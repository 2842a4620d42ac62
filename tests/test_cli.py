"""The command line as a user and a script see it: output, JSON contract, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.gallery import find
from engine.present.report import run_json
from engine.present.text import WIDTH
from engine.sim.simulation import run_source
from tests.support.cli import ROOT, cli

RW_PRIVATE = "PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0"

SMALL = f"""\
char *p = mmap(NULL, 4 * page_size, {RW_PRIVATE});
memset(p, 'x', 2 * page_size);
munmap(p + page_size, page_size);
p[3 * page_size] = 'y';
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.c"
    path.write_text(SMALL)
    return path


def test_json_keeps_the_contract(small: Path) -> None:
    done = cli("run", str(small), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert "error" not in document
    steps = document["steps"]
    assert [s["line"] for s in steps] == [1, 2, 3, 4]
    index = 0
    for step in steps:
        assert {"line", "source", "process", "result", "value", "maps"} <= step.keys()
        assert isinstance(step["line"], int)
        assert isinstance(step["source"], str)
        assert step["process"] == "main"
        assert step["result"] == "ok"
        assert step["value"] is None or isinstance(step["value"], int)
        assert set(step["maps"]) == {"main"}
        assert all(isinstance(line, str) for line in step["maps"]["main"])
        for inner in step["inner"]:
            assert inner["index"] == index
            assert {"function", "summary", "events", "locks", "violations"} <= inner.keys()
            index += 1
    assert steps[0]["value"] == 0x7FFFF7FF3000
    assert steps[0]["maps"]["main"] == ["7ffff7ff3000-7ffff7ff7000 rw-p 00000000 00:00 0"]
    assert steps[3]["value"] is None  # a store has no value
    assert len(steps[2]["maps"]["main"]) == 2


def test_text_run_draws_every_statement_within_75_columns(small: Path) -> None:
    done = cli("run", str(small))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "line 1, main: char *p = mmap(" in out
    assert " vma  A.BB" in out.split("\n")
    assert "\n    why: " in out
    assert max(len(line) for line in out.split("\n")) <= WIDTH


def test_stdin_is_dash() -> None:
    done = cli("run", "-", "--json", stdin=SMALL)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["steps"]) == 4


def test_parse_error_points_at_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.c"
    path.write_text(f"char *p = mmap(NULL, page_size, {RW_PRIVATE});\n  frobnicate(p);\n")
    done = cli("run", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}:2:3: ")
    assert "frobnicate" in done.stderr
    assert done.stdout == ""


def test_parse_error_on_stdin_names_stdin() -> None:
    done = cli("run", "-", stdin="munmap(;\n")
    assert done.returncode == 2
    assert done.stderr.startswith("<stdin>:1:")


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    done = cli("run", str(tmp_path / "nope.c"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr


def test_a_run_that_stops_prints_what_ran_then_the_error(tmp_path: Path) -> None:
    path = tmp_path / "stops.c"
    path.write_text(
        f"char *p = mmap(NULL, page_size, {RW_PRIVATE});\nlong z = 0;\nlong x = 1 / z;\n"
    )
    done = cli("run", str(path))
    assert done.returncode == 3
    assert "line 1, main: char *p = mmap(" in done.stdout
    assert "division by zero" in done.stderr
    as_json = cli("run", str(path), "--json")
    assert as_json.returncode == 3
    document = json.loads(as_json.stdout)
    assert len(document["steps"]) == 2
    assert "division by zero" in document["error"]


def pinned_relocate(tmp_path: Path, policy: str) -> tuple[Path, str]:
    """The gallery's pinned-folio relocation under a `// @policy` line: its file and text."""
    entry = find("relocate_pinned_folio")
    assert entry is not None
    source = f"// @policy {policy}\n{entry.source}"
    path = tmp_path / f"{policy}.c"
    path.write_text(source)
    return path, source


def run_document(*args: str) -> dict[str, object]:
    done = cli("run", "--json", *args)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_run_takes_the_file_s_policy_as_the_web_does_and_policy_overrides_it(
    tmp_path: Path,
) -> None:
    posted, posted_text = pinned_relocate(tmp_path, "posted")
    aborts, aborts_text = pinned_relocate(tmp_path, "pinned_aborts")
    as_posted, as_aborts = run_document(str(posted)), run_document(str(aborts))
    # posted moves every folio but the pinned one and merges; pinned_aborts
    # falls back to a plain move: the last maps differ
    assert as_posted["steps"][-1]["maps"] != as_aborts["steps"][-1]["maps"]  # type: ignore[index]
    for document, text in ((as_posted, posted_text), (as_aborts, aborts_text)):
        assert document == json.loads(json.dumps(run_json(run_source(text))))  # the web's run
    assert run_document(str(aborts), "--policy", "posted") == as_posted
    assert run_document(str(posted), "--policy", "pinned_aborts") == as_aborts


def test_a_wrong_directive_is_exit_2_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "typo.c"
    path.write_text(SMALL + "  // @policy spilt\n")
    for command in ("run", "verify"):
        done = cli(command, str(path))
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith(f"{path}:5:14: unknown RELOCATE_ANON policy 'spilt'")
        assert "split" in done.stderr  # the names it takes
    path.write_text("// @rmap anon_vma\n" + SMALL + "// @rmap cow_context\n")
    done = cli("run", str(path), "--rmap-model", "anon_vma")  # an option does not excuse it
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}:6:1: a second // @rmap line (the first is line 1)")


def test_run_refuses_an_unknown_policy_option(small: Path) -> None:
    done = cli("run", str(small), "--policy", "spilt")
    assert done.returncode == 2
    assert "--policy: invalid choice: 'spilt'" in done.stderr and "pinned_aborts" in done.stderr


def test_list_shows_the_gallery() -> None:
    done = cli("list")
    assert done.returncode == 0, done.stderr
    assert all(len(line) <= WIDTH for line in done.stdout.split("\n"))
    gallery = sorted(p.name for p in (ROOT / "engine" / "scenarios").glob("*.c"))
    for name in gallery:
        assert name in done.stdout


def test_console_script_entry_point_returns_the_exit_code(small: Path) -> None:
    from engine.__main__ import main

    old = sys.argv
    sys.argv = ["mremap-viz", "run", str(small), "--json"]
    try:
        assert main() == 0
    finally:
        sys.argv = old


def test_verify_refuses_the_proposed_flags_up_front(tmp_path: Path) -> None:
    path = tmp_path / "relocate.c"
    path.write_text(
        f"char *p = mmap(NULL, 2 * page_size, {RW_PRIVATE});\n"
        "char *q = mmap(NULL, 2 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "p = mremap(p, 2 * page_size, 2 * page_size,\n"
        "           MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, q);\n"
    )
    done = cli("verify", str(path))
    assert done.returncode == 4
    assert "MREMAP_RELOCATE_ANON" in done.stderr
    assert "proposed" in done.stderr and "mainline" in done.stderr


@pytest.mark.usefixtures("real_kernel")
def test_verify_agrees_on_a_mainline_scenario(small: Path) -> None:
    done = cli("verify", str(small))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "engine and kernel agree on 4 statements"


@pytest.mark.usefixtures("real_kernel")
def test_verify_refuses_the_proposed_bits_however_spelt(tmp_path: Path) -> None:
    path = tmp_path / "literal.c"
    path.write_text(
        f"char *p = mmap(NULL, 2 * page_size, {RW_PRIVATE});\n"
        "char *q = mmap(NULL, 2 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "p = mremap(p, 2 * page_size, 2 * page_size, 1 | 2 | 8, q);\n"
    )
    done = cli("verify", str(path))
    assert done.returncode == 4
    assert "proposed" in done.stderr


@pytest.mark.usefixtures("real_kernel")
def test_verify_refuses_calls_only_the_simulation_has(tmp_path: Path) -> None:
    path = tmp_path / "pin.c"
    path.write_text(f"char *p = mmap(NULL, page_size, {RW_PRIVATE});\npin(p, page_size);\n")
    done = cli("verify", str(path))
    assert done.returncode == 4
    assert "pin()" in done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="verify needs a Linux host")
def test_verify_lists_differences_and_exits_1(
    small: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import cli as module
    from engine.sim.simulation import run_source

    real = [s.record() for s in run_source(SMALL).statements]
    real[2] = {**real[2], "result": "EINVAL", "value": -1}
    monkeypatch.setattr(module, "_real_steps", lambda name, scenario, pages: real)
    assert module.main(["verify", str(small)]) == 1
    out = capsys.readouterr().out
    assert "line 3: munmap(p + page_size, page_size);" in out
    assert "result: simulated ok, real EINVAL" in out
    assert out.rstrip().endswith("1 difference")


def test_json_maps_list_processes_in_creation_order_whatever_the_hash_seed() -> None:
    scenario = str(ROOT / "engine/scenarios/fork_and_cow.c")
    outputs = []
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-m", "engine", "run", scenario, "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
        last = json.loads(done.stdout)["steps"][-1]
        assert list(last["maps"]) == ["main", "child"]
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_gallery_name_is_a_scenario_and_a_file_of_that_name_wins(tmp_path: Path) -> None:
    gallery = (ROOT / "engine" / "scenarios" / "dontunmap.c").read_text()
    for name in ("dontunmap", "dontunmap.c"):
        shown = cli("show", name)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == gallery
    ran = cli("run", "dontunmap", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["steps"]
    (tmp_path / "dontunmap.c").write_text(SMALL)
    local = subprocess.run(
        [sys.executable, "-m", "engine", "show", "dontunmap.c"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert local.stdout == SMALL
    missing = cli("run", "no_such_scenario")
    assert missing.returncode == 2
    assert "nor a gallery scenario" in missing.stderr

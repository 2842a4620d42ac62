"""The kernel's own tools/testing/selftests/mm/merge.c (Linux 6.18), pasted whole.

The file is the kernel's, so it is not part of this repository: copy it
to tests/data/selftests/ to run these, with the series' files beside it:
merge_relocate_anon.c (merge.c with v1 patch 07's ten tests, written out
from the posted patch, message-id
96242c962cd2da54b15d97aac8761bedb285459c.1749473726.git.lorenzo.stoakes@oracle.com,
inserted before TEST_HARNESS_MAIN) and merge_relocate_fork.c (merge.c with
v1 patch 11 applied). The tests skip, saying so, when a file is absent.
Every anonymous-memory test must pass its asserts on the engine, the two
tests outside the model (uprobes on a file, KSM's prctl) must skip with
their reason, and `verify` must agree with this kernel test by test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scenario.harness import parse_harness
from engine.sim.simulation import run_test
from tests.support.host import real_kernel_unavailable, verify

DATA = Path(__file__).parent / "data" / "selftests"
MERGE_C = DATA / "merge.c"
RELOCATE_ANON_C = DATA / "merge_relocate_anon.c"
RELOCATE_FORK_C = DATA / "merge_relocate_fork.c"
OUTSIDE_THE_MODEL = {
    "merge.handle_uprobe_upon_merged_vma": "not modelled: sizeof(struct perf_event_attr) at 468:25",
    "merge.ksm_merge": "not modelled: prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) at 542:8",
}


def needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here: copy the kernel's file there to run this")


def verdicts(path: Path) -> dict[str, tuple[str, str | None]]:
    harness = parse_harness(path.read_bytes())
    found = {}
    for test in harness.tests:
        verdict = run_test(harness, test).verdict
        assert verdict is not None
        found[test.name] = (verdict.result, verdict.reason)
    return found


def test_every_anonymous_memory_test_of_merge_c_passes_on_the_engine() -> None:
    needs(MERGE_C)
    found = verdicts(MERGE_C)
    assert len(found) == 15
    for name, (result, reason) in found.items():
        if name in OUTSIDE_THE_MODEL:
            assert (result, reason) == ("skip", OUTSIDE_THE_MODEL[name])
        else:
            assert result == "pass", (name, reason)


def test_patch_07s_relocate_anon_merge_tests_pass_as_posted() -> None:
    needs(RELOCATE_ANON_C)
    found = verdicts(RELOCATE_ANON_C)
    relocating = {name: v for name, v in found.items() if "relocate_anon" in name}
    assert len(relocating) == 10
    assert all(result == "pass" for result, _ in relocating.values()), relocating
    assert len(found) == 25  # merge.c's own fifteen still run beside them


def test_the_series_fork_tests_pass_with_their_interleaving() -> None:
    needs(RELOCATE_FORK_C)
    found = verdicts(RELOCATE_FORK_C)
    relocating = [name for name in found if "relocate_anon" in name]
    assert len(relocating) == 3
    assert all(found[name][0] == "pass" for name in relocating), found


@pytest.mark.skipif(real_kernel_unavailable() is not None, reason=str(real_kernel_unavailable()))
def test_verify_agrees_with_the_kernel_on_every_merge_c_test() -> None:
    needs(MERGE_C)
    done = verify(MERGE_C)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# engine and kernel agree on 15 / 15 tests" in done.stdout
    for name in OUTSIDE_THE_MODEL:
        assert any(
            line.startswith("ok ") and f"{name} # SKIP" in line for line in done.stdout.splitlines()
        )

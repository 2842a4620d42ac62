"""The merge cases of MREMAP_RELOCATE_ANON as harness tests of our own.

tests/data/relocate_anon_merge.c covers the ten cases of the v1 series'
patch 07 (tests/test_harness_merge.py runs the posted ones when the
kernel's files are copied in), written for this repository so CI checks
them. Each test must pass with the flag and fail without it: a plain
mremap() leaves the moved VMA apart, and on mainline calls the real
kernel must agree test by test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scenario.harness import parse_harness
from engine.sim.simulation import run_harness
from tests.support.data import DATA
from tests.support.host import real_kernel_unavailable, verify

SOURCE = (DATA / "relocate_anon_merge.c").read_text()
WITHOUT_FLAG = SOURCE.replace("MREMAP_MUST_RELOCATE_ANON", "0")


def results(source: str) -> dict[str, str]:
    suite = run_harness(parse_harness(source))
    return {run.test or "": run.verdict.result if run.verdict else "fail" for run in suite.runs}


def test_every_case_merges_with_must_relocate_anon() -> None:
    found = results(SOURCE)
    assert len(found) == 10
    assert set(found.values()) == {"pass"}, found


def test_without_the_flag_no_case_merges() -> None:
    assert "MREMAP_MUST_RELOCATE_ANON" not in WITHOUT_FLAG
    found = results(WITHOUT_FLAG)
    assert set(found.values()) == {"fail"}, found


@pytest.mark.skipif(real_kernel_unavailable() is not None, reason=str(real_kernel_unavailable()))
def test_without_the_flag_the_kernel_fails_them_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "plain.c"
    path.write_text(WITHOUT_FLAG)
    done = verify(path)
    assert "# engine and kernel agree on 10 / 10 tests" in done.stdout, done.stdout + done.stderr

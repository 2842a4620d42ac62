"""Whether this host can run scenarios on its own kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.verify.check import check_source
from engine.verify.real import find_compiler
from tests.support.cli import cli


def real_kernel_unavailable() -> str | None:
    """Why scenarios cannot run on the host kernel here, or None if they can."""
    if not sys.platform.startswith("linux"):
        return "the real-kernel checks need a Linux host"
    if find_compiler() is None:
        return "no C compiler (cc, gcc, clang or $CC) to build the executor"
    return None


def assert_kernel_agrees(source: str) -> None:
    """`source` on the model and on this kernel, page by page after every
    statement: they agree (skipped where the host cannot run it)."""
    why = real_kernel_unavailable()
    if why:
        pytest.skip(why)
    verdict = check_source(source)
    assert verdict.agrees, str(verdict)


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m engine verify PATH`: the file on the model and on this kernel."""
    return cli("verify", str(path), timeout=300)

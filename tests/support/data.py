"""Files the tests read, kept in the repo under tests/data/."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def language_example() -> str:
    """The "Example" of the scenario-language reference
    (../shared/reference/scenario-language.md), verbatim: the contract's own scenario."""
    return (DATA / "scenario-language-example.c").read_text()


def two_tests() -> str:
    """A harness file of two tests, one passing and one failing at line 42
    (tests/data/two_tests.c): what the web's harness tests paste."""
    return (DATA / "two_tests.c").read_text()

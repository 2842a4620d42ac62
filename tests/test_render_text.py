"""The text picture: what a kernel developer pastes into review mail.

Each picture is the kernel's tools/testing/vma style: one column per page,
one letter per VMA, and an rmap row where '!' marks a page whose folio
index no longer matches linear_page_index().
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.mm_types import State
from engine.present.picture import render_state
from engine.present.statement import render_statement
from engine.present.text import WIDTH, fit
from engine.sim.simulation import Run, run_source

RW_PRIVATE = "PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0"

# 01234567890
# AAAAA.BBBBB    two VMAs: a hole punched in one mapping
# **             the first two pages of A written
FAULTED_PAIR = f"""
char *p = mmap(NULL, 11 * page_size, {RW_PRIVATE});
munmap(p + 5 * page_size, page_size);
memset(p, 'x', 2 * page_size);
"""


def final(run: Run) -> State:
    assert run.error is None, run.error
    return run.steps[-1].state


@pytest.fixture
def faulted_pair() -> Run:
    return run_source(FAULTED_PAIR)


def assert_fits(text: str) -> None:
    too_wide = [line for line in text.split("\n") if len(line) > WIDTH]
    assert not too_wide, too_wide


def test_two_vmas_draw_one_column_per_page(faulted_pair: Run) -> None:
    state = final(faulted_pair)
    a, b = state.mm_vmas("main")
    av = a.anon_vma
    assert av is not None and av < 10 and b.id < 10  # one-digit ids keep the columns below
    assert render_state(state, "main").split("\n") == [
        "main (pid 1): 2 VMAs, page 0 at 7ffff7fec000",
        "      01234567890",
        " vma  AAAAA.BBBBB",
        " pte  **",
        " rmap ..",
        " key: * mapped once; . rmap finds it",
        "   vma start-end                 pages prot vm_pgoff  anon_vma avc",
        f" A #{a.id}  7ffff7fec000-7ffff7ff1000     5 rw-p 7ffff7fec #{av}         1",
        f" B #{b.id}  7ffff7ff2000-7ffff7ff7000     5 rw-p 7ffff7ff2 -          0",
        "",
        " anon_vma root parent refcount num_children num_active_vmas chains",
        f" #{av}       #{av}   #{av}            1            1               1 A",
    ]


def test_unfaulted_picture_has_no_pte_rows() -> None:
    run = run_source(f"char *p = mmap(NULL, 3 * page_size, {RW_PRIVATE});")
    lines = render_state(final(run)).split("\n")
    assert lines[1:3] == ["      012", " vma  AAA"]
    assert not any(line.startswith((" pte", " rmap")) for line in lines)


def test_an_empty_process_says_so() -> None:
    run = run_source(f"char *p = mmap(NULL, page_size, {RW_PRIVATE});\nmunmap(p, page_size);")
    assert render_state(final(run)) == "main (pid 1): no VMAs"


def test_index_mismatch_is_marked_where_rmap_would_miss(faulted_pair: Run) -> None:
    # 01234567890
    # AAAAA.BBBBB
    # !!             A's vm_pgoff moved under its folios: rmap looks elsewhere
    state = final(faulted_pair)
    vma_a = state.mm_vmas("main")[0]
    state = state._replace(vmas=state.vmas.set(vma_a.id, replace(vma_a, vm_pgoff=0x10)))
    first, second = sorted(state.folios.keys())
    text = render_state(state, "main")
    lines = text.split("\n")
    assert lines[3:5] == [" pte  **", " rmap !!"]
    assert f" ! A page 0: folio#{first} index 7ffff7fec, linear_page_index 10" in lines
    assert f" ! A page 1: folio#{second} index 7ffff7fed, linear_page_index 11" in lines
    assert "index != linear_page_index" in text
    assert_fits(text)


def test_folio_mapping_an_anon_vma_that_does_not_chain_the_vma(faulted_pair: Run) -> None:
    state = final(faulted_pair)
    first = min(state.folios.keys())
    folio = state.folios[first]
    state = state._replace(folios=state.folios.set(first, folio._replace(mapping=999)))
    lines = render_state(state, "main").split("\n")
    assert lines[4] == " rmap ?."
    assert f" ? A page 0: folio#{first} maps av#999, not chaining it" in lines


def test_fork_shows_both_processes_and_shared_pages() -> None:
    run = run_source(
        f"char *p = mmap(NULL, 4 * page_size, {RW_PRIVATE});\n"
        "memset(p, 1, 2 * page_size);\n"
        "pid_t child = fork();\n"
        "child: p[page_size] = 2;\n"
    )
    text = render_state(final(run))
    assert "main (pid 1): 1 VMA" in text
    assert "child (pid" in text
    assert " pte  +*" in text.split("\n")  # page 0 shared, page 1 copied on write
    assert "1 child:A main:A" in text  # the parent's anon_vma chains both
    assert_fits(text)


def test_one_tib_mapping_is_elided_and_fits() -> None:
    run = run_source(
        "char *big = mmap(NULL, 1UL << 40, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);\n"
        "memset(big + 100 * page_size, 'x', 3 * page_size);\n"
        "big[1000 * page_size] = 1;\n"
        "munmap(big + 5000 * page_size, page_size);\n"
        "char *small = mmap(NULL, 3 * page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
    )
    text = render_state(final(run))
    assert_fits(text)
    lines = text.split("\n")
    vma_row = next(line for line in lines if line.startswith(" vma "))
    assert "~" in vma_row and "***" in "".join(lines)
    assert any(line.startswith(" ~ column") and "268430449" in line for line in lines)
    assert any(line.startswith(" C #") for line in lines)


def test_many_vmas_wrap_into_bands_and_fit() -> None:
    # 130 VMAs (every other page unmapped): more letters than A-Z a-z, more
    # columns than one band.
    holes = "\n".join(f"munmap(p + {2 * i + 1} * page_size, page_size);" for i in range(129))
    run = run_source(f"char *p = mmap(NULL, 259 * page_size, {RW_PRIVATE});\n{holes}\n")
    text = render_state(final(run))
    assert_fits(text)
    lines = text.split("\n")
    assert sum(line.startswith(" vma ") for line in lines) >= 2
    assert any(line.startswith(" A2 #") for line in lines)


def test_large_populated_and_sparse_layout_fits() -> None:
    stores = "\n".join(f"p[{i * 7} * page_size] = 1;" for i in range(60))
    run = run_source(
        f"char *p = mmap(NULL, 1000 * page_size, {RW_PRIVATE});\n"
        f"char *q = mmap(NULL, 1UL << 30, {RW_PRIVATE});\n"
        f"memset(q, 1, 600 * page_size);\n{stores}\n"
    )
    text = render_state(final(run))
    assert_fits(text)
    assert "more elisions" in text


def test_statement_shows_source_result_and_the_picture_after(faulted_pair: Run) -> None:
    text = render_statement(faulted_pair, 1)
    lines = text.split("\n")
    assert lines[0] == "line 3, main: munmap(p + 5 * page_size, page_size);"
    assert lines[1] == "  = ok, returns 0"
    assert " vma  AAAAA.BBBBB" in lines
    before, after = faulted_pair.statement_states(1)
    assert len(before.processes["main"].vmas) == 1
    assert len(after.processes["main"].vmas) == 2


def test_statement_with_inner_steps_explains_why(faulted_pair: Run) -> None:
    text = render_statement(faulted_pair, 0, inner=True)
    assert "= ok, returns 0x7ffff7fec000" in text
    assert "\n  mm/mmap.c:do_mmap: " in text
    assert "\n    why: " in text
    assert "(statement)" not in text
    assert_fits(text)


def test_assignment_without_steps_keeps_the_state_before() -> None:
    run = run_source(f"char *p = mmap(NULL, page_size, {RW_PRIVATE});\nchar *q = p + 4096;\n")
    before, after = run.statement_states(1)
    assert before is after is run.steps[-1].state
    assert "= ok, returns 0x7ffff7ff7000" in render_statement(run, 1)


def test_fit_wraps_long_lines_and_words() -> None:
    lines = fit(["  " + "word " * 40, "x" * 200])
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[1].startswith("    word")

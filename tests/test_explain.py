"""Every merge, reuse and refusal says which rule decided, with its values.

One scenario per rule, in which that rule is the deciding one; each test
asserts the explanation names the rule and the values it compared. Pages
are columns, as in the kernel's tools/testing/vma.
"""

from __future__ import annotations

from engine.present.trace import rule_text
from engine.sim.simulation import Run, run_source
from engine.sim.trace import Event, Rule
from engine.vma import explain_adjacent

CARVEOUT = "char *c = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
RW = "PROT_READ | PROT_WRITE"


def at(name: str, page: int, pages: int, fault: bool, extra: str = "") -> str:
    text = (
        f"char *{name} = mmap(&c[{page} * page_size], {pages} * page_size, {RW},"
        f" MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED{extra}, -1, 0);\n"
    )
    return text + (f"memset({name}, 'x', {pages} * page_size);\n" if fault else "")


def events(run: Run, statement: int = -1) -> list[Event]:
    """The decisions of one statement (the last by default)."""
    record = run.statements[statement]
    return [e for s in run.steps[record.first : record.last] for e in s.events]


def decided(run: Run, rule: str, statement: int = -1) -> Event:
    """The event whose rule is `rule` (exactly one must exist)."""
    found = [e for e in events(run, statement) if e.rule is not None and rule_text(e.rule) == rule]
    assert len(found) == 1, [(e.decision, dict(e.values)) for e in events(run, statement)]
    return found[0]


# 0123456789
#  ---AAAAA     a RW mapping inside PROT_NONE: flags differ on both sides
def test_flags_differ() -> None:
    run = run_source(CARVEOUT + at("a", 4, 5, fault=False))
    prev = [e for e in events(run) if e.decision.startswith("prev")][0]
    values = dict(prev.values)
    assert prev.rule == Rule("is_mergeable_vma", "vm_flags")
    assert values["differ"] == "read,write,account"


# 0123456789
#  AAAABBBB     two MAP_SHARED mappings: each its own shmem file
def test_different_files() -> None:
    src = CARVEOUT + (
        f"char *a = mmap(&c[1 * page_size], 4 * page_size, {RW}, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        f"char *b = mmap(&c[5 * page_size], 4 * page_size, {RW}, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    )
    run = run_source(src)
    # the new range has no file yet; the neighbour has its own
    event = decided(run, "is_mergeable_vma: vm_file")
    assert event.decision.startswith("prev")


# 0123456789012345678901234
#  AAAAA              BBBBB    B faulted at 20, moved next to A
#  AAAAABBBBB                  not merged: B kept the pgoff of page 20
def test_faulted_move_keeps_its_pgoff() -> None:
    src = CARVEOUT + at("a", 1, 5, fault=False) + at("b", 20, 5, fault=True)
    src += "b = mremap(b, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &a[5 * page_size]);\n"
    run = run_source(src)
    event = decided(run, "can_vma_merge_after: vm_pgoff")
    values = dict(event.values)
    assert values["found_pgoff"] != values["expected_pgoff"]
    assert int(values["found_pgoff"], 16) - int(values["expected_pgoff"], 16) == 20 - 6
    assert "keeps the pgoff of where it was faulted" in event.decision
    # case 2 was fine: the unfaulted A would have taken B's anon_vma
    assert values["anon_vma"].startswith("anon_vma#") and values["target_anon_vma"] == "NULL"


# 0123456789012345678901234
#  AAAAA              BBBBB    A and B faulted separately, B moved next to A:
#  AAAAABBBBB                  case 3 refuses before pgoff is even compared
def test_case_3_different_anon_vmas() -> None:
    src = CARVEOUT + at("a", 1, 5, fault=True) + at("b", 20, 5, fault=True)
    src += "b = mremap(b, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &a[5 * page_size]);\n"
    run = run_source(src)
    event = decided(run, "is_mergeable_anon_vma: case 3")
    values = dict(event.values)
    assert values["anon_vma"] != values["target_anon_vma"]
    assert "NULL" not in (values["anon_vma"], values["target_anon_vma"])
    assert "expected_pgoff" not in values


# 0123456789
#  AAAAA         faulted, then fork: the child's A has two anon_vma_chains
#  AAAAABBBBB    child maps B next to it: case 2 refuses a fork-child target
def test_case_2_fork_child_target() -> None:
    src = CARVEOUT + at("a", 1, 5, fault=True) + "pid_t child = fork();\n"
    src += "child: memset(a, 'y', 5 * page_size);\n"
    src += f"child: char *b = mmap(&c[6 * page_size], 5 * page_size, {RW}, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    run = run_source(src)
    event = decided(run, "is_mergeable_anon_vma: case 2, vma_is_fork_child(tgt)")
    assert dict(event.values)["anon_vma_chains"] == "2"


# 0123456789
#  AAAAABBBBB    parent: A faulted; B RW unfaulted; fork
#                child: mprotect A to RWX, B to RWX: A is a fork child source
def test_case_1_fork_child_source() -> None:
    src = CARVEOUT + at("a", 1, 5, fault=True) + "pid_t child = fork();\n"
    src += "child: char *b = mmap(&c[6 * page_size], 5 * page_size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    src += "child: mprotect(a, 5 * page_size, PROT_READ | PROT_WRITE | PROT_EXEC);\n"
    run = run_source(src)
    event = decided(run, "is_mergeable_anon_vma: case 1, vma_is_fork_child(src)")
    assert dict(event.values)["anon_vma_chains"] == "2"


# 0123456789012345678901234
#  BBB AAA                     A faulted at 4, moved away to 20, B unfaulted at 1;
#  BBBAAA                      fork, then A back next to B with DONTUNMAP:
#                              the copied-from VMA is a fork child (6.18.8)
def test_case_1_copied_from_fork_child() -> None:
    src = CARVEOUT + at("a", 4, 3, fault=True)
    src += "a = mremap(a, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &c[20 * page_size]);\n"
    src += at("b", 1, 3, fault=False) + "pid_t child = fork();\n"
    src += "child: char *r = mremap(a, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, &c[4 * page_size]);\n"
    run = run_source(src)
    event = decided(run, "is_mergeable_anon_vma: case 1, vma_is_fork_child(copied_from)")
    assert "6.18.8" in event.decision


# 0123456789
#  AAA   BBB     A and B faulted separately; the unfaulted middle joins either
#  AAAMMMBBB     alone, but not both: two anon_vmas cannot become one VMA
def test_three_way_refusal() -> None:
    src = CARVEOUT + at("a", 1, 3, fault=True) + at("b", 7, 3, fault=True)
    src += f"char *m = mmap(&c[4 * page_size], 3 * page_size, {RW}, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    run = run_source(src)
    event = decided(run, "can_vma_merge_right: three-way, prev and next anon_vmas")
    values = dict(event.values)
    assert values["prev_anon_vma"] != values["next_anon_vma"]
    assert any(e.decision.startswith("merged with prev") for e in events(run))


def test_range_strictly_inside() -> None:
    src = (
        CARVEOUT
        + at("a", 1, 9, fault=True)
        + "mprotect(a + 3 * page_size, 3 * page_size, PROT_READ);\n"
    )
    run = run_source(src)
    decided(run, "vma_merge_existing_range: neither side")


RELOCATE = "MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON"


def test_should_relocate_anon_names_each_refusal() -> None:
    shared = CARVEOUT + (
        f"char *s = mmap(&c[1 * page_size], 4 * page_size, {RW}, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        f"char *r = mremap(s, 4 * page_size, 4 * page_size, {RELOCATE}, &c[20 * page_size]);\n"
    )
    run = run_source(shared)
    assert "fatal under MUST" in decided(run, "vma_is_anonymous").decision
    forked = CARVEOUT + at("a", 1, 4, fault=True) + "pid_t child = fork();\n"
    forked += (
        f"char *r = mremap(a, 4 * page_size, 4 * page_size, {RELOCATE}, &c[20 * page_size]);\n"
    )
    event = decided(run_source(forked), "vma_maybe_has_shared_anon_folios")
    assert "forked parent" in event.decision and "num_children 2" in event.decision
    child = forked.replace("char *r = mremap", "child: char *r = mremap")
    event = decided(run_source(child), "vma_maybe_has_shared_anon_folios")
    assert "fork child" in event.decision and dict(event.values)["chains"] == "2"
    unfaulted = CARVEOUT + at("a", 1, 4, fault=False)
    unfaulted += (
        f"char *r = mremap(a, 4 * page_size, 4 * page_size, {RELOCATE}, &c[20 * page_size]);\n"
    )
    run = run_source(unfaulted)
    assert "not an error" in decided(run, "should_relocate_anon: !vma->anon_vma").decision
    assert run.statements[-1].outcome.result.result == "ok"


def test_anon_vma_prepare_reuses_next_then_prev() -> None:
    # 0123456789
    #  AAAAA         A faulted; B mapped right after, RWX: never merged with A
    #  AAAAABBBBB    (flags differ) but anon_vma_compatible (rwx may differ):
    #                B's first write fault reuses A's anon_vma
    src = CARVEOUT + at("a", 1, 5, fault=True)
    src += "char *b = mmap(&c[6 * page_size], 5 * page_size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    src += "b[0] = 1;\n"
    run = run_source(src)
    decisions = [e.decision for e in events(run)]
    assert any(d.startswith("reuse anon_vma#") and "of prev" in d for d in decisions)
    assert not any(d.startswith("allocated anon_vma#") for d in decisions)


def test_anon_vma_fork_reuses_an_orphaned_ancestor() -> None:
    # main forks b, b forks c, b unmaps its VMA: b's anon_vma has no active
    # VMA and one child. When c forks d, d reuses it instead of allocating.
    src = CARVEOUT + at("a", 1, 4, fault=True)
    src += "pid_t b = fork();\nb: pid_t cc = fork();\nb: munmap(a, 4 * page_size);\ncc: pid_t d = fork();\n"
    run = run_source(src)
    decisions = [e.decision for e in events(run)]
    assert any(d.startswith("reuse anon_vma#") and "no active VMAs" in d for d in decisions)
    assert not any("allocated anon_vma#" in d for d in decisions)


def test_errno_names_the_check() -> None:
    src = CARVEOUT + at("a", 1, 4, fault=True)
    src += "char *r = mremap(a, 4 * page_size, 4 * page_size, MREMAP_RELOCATE_ANON);\n"
    run = run_source(src)
    (event,) = [e for e in events(run) if dict(e.values).get("errno")]
    assert dict(event.values)["errno"] == "EINVAL"
    assert "MREMAP_MAYMOVE" in event.decision


def test_why_not_merged_asks_the_same_rule_of_any_snapshot() -> None:
    src = CARVEOUT + at("a", 1, 5, fault=True) + at("b", 20, 5, fault=True)
    src += "b = mremap(b, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &a[5 * page_size]);\n"
    run = run_source(src)
    state = run.steps[-1].state
    vmas = [v for v in state.mm_vmas("main") if v.vm_flags & 0x2]
    verdict = explain_adjacent(state, vmas[0], vmas[1])
    assert not verdict.ok
    assert verdict.rule == Rule("is_mergeable_anon_vma", "case 3")

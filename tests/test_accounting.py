"""Metadata accounting: what a plain move and a relocating move leave behind."""

from __future__ import annotations

from engine.accounting import (
    ANON_VMA_BYTES,
    ANON_VMA_CHAIN_BYTES,
    VM_AREA_STRUCT_BYTES,
    metadata,
)
from engine.gallery import find
from engine.present.report import run_json
from engine.sim.simulation import run_source
from engine.variants import apply


def test_relocation_cuts_the_metadata_of_repeated_moves() -> None:
    # 0123456789012345678901234
    #  AAA      BBB       CCC       three faulted VMAs, three anon_vmas
    #  AAABBBCCC                    moved together: plain keeps 3 VMAs,
    #                               relocation merges them into one
    source = find("relocate_fragmentation").source
    relocated = metadata(run_source(source).steps[-1].state)
    plain = metadata(run_source(apply("flags", source)).steps[-1].state)
    assert (relocated.vmas, relocated.anon_vmas, relocated.anon_vma_chains) == (4, 1, 1)
    assert (plain.vmas, plain.anon_vmas, plain.anon_vma_chains) == (6, 3, 3)
    saved = plain.bytes - relocated.bytes
    assert saved == 2 * VM_AREA_STRUCT_BYTES + 2 * ANON_VMA_BYTES + 2 * ANON_VMA_CHAIN_BYTES


def test_report_carries_metadata_per_statement() -> None:
    document = run_json(run_source(find("fork_and_cow").source))
    steps = document["steps"]
    assert isinstance(steps, list)
    after_fork = [s for s in steps if "fork" in s["source"]][0]
    assert after_fork["metadata"]["processes"] == 2
    # the child's VMA is chained to the parent's anon_vma and its own
    assert after_fork["metadata"]["anon_vma_chains"] > after_fork["metadata"]["anon_vmas"]

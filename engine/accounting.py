"""Kernel memory the mm metadata costs: VMAs, anon_vmas, anon_vma_chains.

Ours. The RELOCATE_ANON series exists to cut this metadata ("a
proliferation of unreclaimable, unmovable kernel metadata"), so every state
can say what it holds and what that costs, to compare a plain move with a
relocating one.

Object sizes are the slab object sizes of x86-64 Linux 6.18, read from
/proc/slabinfo (objsize column) of the 6.18.44 host these tests run on:
vm_area_struct 192, anon_vma 104, anon_vma_chain 64 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.mm_types import State

VM_AREA_STRUCT_BYTES = 192
ANON_VMA_BYTES = 104
ANON_VMA_CHAIN_BYTES = 64
SIZES_SOURCE = "/proc/slabinfo objsize, x86-64 Linux 6.18.44"


@dataclass(frozen=True)
class Metadata:
    """How many mm metadata objects a state holds, and their slab bytes."""

    processes: int
    vmas: int
    anon_vmas: int
    anon_vma_chains: int
    folios: int

    @property
    def bytes(self) -> int:
        """Slab memory of the VMAs, anon_vmas and anon_vma_chains."""
        return (
            self.vmas * VM_AREA_STRUCT_BYTES
            + self.anon_vmas * ANON_VMA_BYTES
            + self.anon_vma_chains * ANON_VMA_CHAIN_BYTES
        )

    def as_dict(self) -> dict[str, int]:
        """The JSON form."""
        return {
            "processes": self.processes,
            "vmas": self.vmas,
            "anon_vmas": self.anon_vmas,
            "anon_vma_chains": self.anon_vma_chains,
            "folios": self.folios,
            "bytes": self.bytes,
        }


def metadata(state: State) -> Metadata:
    """Count a snapshot's metadata objects (each chain counted once)."""
    return Metadata(
        processes=len(state.processes),
        vmas=len(state.vmas),
        anon_vmas=len(state.anon_vmas),
        anon_vma_chains=sum(len(v.avc) for v in state.vmas.values()),
        folios=len(state.folios),
    )

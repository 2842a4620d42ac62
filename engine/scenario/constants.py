"""The constants a scenario may name, with their x86-64 Linux values.

The uapi names come from engine.uapi, page_size from engine.mm_constants;
what is added here is the C a scenario writes beside them (NULL,
MAP_FAILED).
"""

from engine.mm_constants import PAGE_SIZE
from engine.uapi import MADV, MAP, MREMAP, PROT

OTHER = {
    "NULL": 0,
    "page_size": PAGE_SIZE,
    "PAGE_SIZE": PAGE_SIZE,
    "MAP_FAILED": (1 << 64) - 1,
}

CONSTANTS: dict[str, int] = {**PROT, **MAP, **MREMAP, **MADV, **OTHER}

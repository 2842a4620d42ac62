"""mremap(2). Models mm/mremap.c (being written)."""

from engine.errors import SyscallError
from engine.kernel import Kernel


def do_mremap(
    k: Kernel, mm: str, addr: int, old_len: int, new_len: int, flags: int, new_addr: int = 0
) -> int:
    raise SyscallError("ENOSYS", "not modelled yet")

"""fork(2). Models mm/mmap.c:dup_mmap (being written)."""

from engine.errors import SyscallError
from engine.kernel import Kernel


def dup_mmap(k: Kernel, parent: str, child: str) -> int:
    raise SyscallError("ENOSYS", "not modelled yet")

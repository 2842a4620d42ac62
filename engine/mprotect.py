"""mprotect(2). Models mm/mprotect.c (being written)."""

from engine.errors import SyscallError
from engine.kernel import Kernel


def do_mprotect(k: Kernel, mm: str, start: int, length: int, prot: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")

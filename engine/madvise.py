"""madvise(2). Models mm/madvise.c (being written)."""

from engine.errors import SyscallError
from engine.kernel import Kernel


def do_madvise(k: Kernel, mm: str, start: int, length: int, advice: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")


def swap_out(k: Kernel, mm: str, start: int, length: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")


def install_migration_entries(k: Kernel, mm: str, start: int, length: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")

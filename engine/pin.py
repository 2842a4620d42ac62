"""Long-term pins. Models mm/gup.c (being written)."""

from engine.errors import SyscallError
from engine.kernel import Kernel


def pin_user_pages(k: Kernel, mm: str, start: int, length: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")


def unpin_user_pages(k: Kernel, mm: str, start: int, length: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")


def arm_gup_fast_race(k: Kernel, mm: str, addr: int, when: int) -> None:
    raise SyscallError("ENOSYS", "not modelled yet")

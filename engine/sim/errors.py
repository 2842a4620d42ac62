"""How a simulated system call fails: the errno and the check that said so."""


class SyscallError(Exception):
    """A system call returns -errno; `why` names the kernel's check."""

    def __init__(self, errno: str, why: str) -> None:
        super().__init__(f"{errno}: {why}")
        self.errno = errno
        self.why = why

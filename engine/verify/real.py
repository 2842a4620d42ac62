"""Run a scenario's calls on the host kernel, to check the simulated one.

`RealMachine` implements `engine.sim.backend.Backend` with one small static C
executor per process (`executor.c`, compiled on first use). Each executor is
started with ASLR off, so addresses match the simulator's top-down layout,
and talks to Python over its own unix socket; a fork passes the child its
socket with SCM_RIGHTS. Every read has a deadline and every error or
timeout kills all executors, so a broken kernel or scenario cannot hang
the caller.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

from engine.mm_constants import PAGE_SHIFT, TASK_SIZE
from engine.pagetable import PGD_SHIFT, PMD_SHIFT, PUD_SHIFT, TablePages
from engine.sim.backend import (
    PAGE_FIELDS,
    PAGEMAP_FIELDS,
    CallResult,
    PageRecord,
    ProcessPages,
    ProcessTables,
)
from engine.uapi import ERRNO_NAME

COMPILE_FLAGS = ("-static", "-O1")
ADDR_NO_RANDOMIZE = 0x0040000
# The executor's program image and bss lie here; a scenario's mappings do not.
IMAGE_END = 0x10000000
SHARED_ANON_PATH = "/dev/zero (deleted)"
TOP_DOWN_SPECIALS = ("[vvar]", "[vvar_vclock]", "[vdso]")

# name: (op, fewest arguments, most arguments)
_OPS = {
    "mmap": (1, 6, 6),
    "munmap": (2, 2, 2),
    "mprotect": (3, 3, 3),
    "mremap": (4, 4, 5),
    "madvise": (5, 3, 3),
    "memset": (6, 3, 3),
}
_OP_STORE = 7
_OP_LOAD = 8
_OP_FORK = 9
_OP_MAPS = 10
_OP_PAGES = 11
_PAGES_FULL = 1
# One OP_PAGES request covers at most this many pages (the executor's buffer).
PAGES_PER_REQUEST = 1 << 16
_PAGE_RECORD = struct.Struct("=6Q")
PM_PFN_MASK = (1 << 55) - 1
PM_MMAP_EXCLUSIVE = 1 << 56
PM_PRESENT = 1 << 63
KPF_ANON = 1 << 12
KPF_THP = 1 << 22
KPF_ZERO_PAGE = 1 << 24
_VMA_LINE = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")

# include/uapi/linux/fs.h: struct procmap_query (size, query_flags,
# query_addr, vma_start, vma_end, vma_flags, vma_page_size, vma_offset,
# inode, dev_major, dev_minor, vma_name_size, build_id_size, vma_name_addr,
# build_id_addr) and PROCMAP_QUERY = _IOWR('f', 17, struct procmap_query).
_PROCMAP_QUERY = struct.Struct("=9Q4I2Q")
PROCMAP_QUERY = (3 << 30) | (_PROCMAP_QUERY.size << 16) | (ord("f") << 8) | 17
_COMMAND = struct.Struct("=7Q")
_REPLY = struct.Struct("=qqQ")
_REPLY_OK, _REPLY_ERRNO, _REPLY_SIGNAL = 0, 1, 2
_U64 = (1 << 64) - 1


class RealMachineError(RuntimeError):
    """The executor could not be built, started or reached."""


class ExecutorTimeout(RealMachineError):
    """An executor did not answer in time; all executors were killed."""


class NotMainline(Exception):
    """A call only the simulated kernel knows, so it cannot be checked."""

    def __init__(self, call: str) -> None:
        super().__init__(f"{call}() cannot be checked on a real kernel")
        self.call = call


def normalise_maps_line(line: str) -> str:
    """One /proc/PID/maps line with single spaces: the kernel pads the
    pathname column, which a comparison must not see."""
    fields = line.split(maxsplit=5)
    return " ".join(fields)


def canonical_inodes(lines: list[str]) -> list[str]:
    """Renumber non-zero inodes 1, 2, ... by first appearance: shared
    anonymous mappings get a fresh shmem inode on every run."""
    numbers: dict[str, str] = {}
    out = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and fields[4] != "0":
            fields[4] = numbers.setdefault(fields[4], str(len(numbers) + 1))
        out.append(" ".join(fields))
    return out


def find_compiler() -> str | None:
    """The C compiler to build the executor with: $CC, cc, gcc or clang."""
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/mremap-viz, or ~/.cache/mremap-viz."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mremap-viz"


def executor_path() -> Path:
    """The compiled executor, built on first use.

    Keyed by a hash of the source and flags; compiled to a temporary name
    and renamed, so concurrent test processes never run a half-written file.
    """
    source = resources.files("engine.verify").joinpath("executor.c").read_bytes()
    digest = hashlib.sha256(source + " ".join(COMPILE_FLAGS).encode()).hexdigest()[:16]
    directory = cache_dir()
    target = directory / f"executor-{digest}"
    if os.access(target, os.X_OK):
        return target
    compiler = find_compiler()
    if compiler is None:
        raise RealMachineError("no C compiler found (cc, gcc, clang or $CC)")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".executor-")
    os.close(fd)
    src = Path(tmp + ".c")
    try:
        src.write_bytes(source)
        built = subprocess.run(
            [compiler, *COMPILE_FLAGS, "-o", tmp, str(src)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if built.returncode != 0:
            raise RealMachineError(
                f"building the executor failed ({compiler} {' '.join(COMPILE_FLAGS)}):\n"
                + built.stderr
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        src.unlink(missing_ok=True)
        Path(tmp).unlink(missing_ok=True)
    return target


@dataclass
class _Process:
    name: str
    pid: int
    sock: socket.socket


class RealMachine:
    """The host kernel as a Backend: one executor process per scenario process.

    Use as a context manager; leaving it, any error and any timeout kill
    every executor. Not thread-safe.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        if not sys.platform.startswith("linux"):
            raise RealMachineError("a real machine needs a Linux host")
        self.timeout = timeout
        self._processes: dict[str, _Process] = {}
        self._closed: str | None = None
        self._full_pages = True
        exe = executor_path()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._main = subprocess.Popen(
                [str(exe)],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._processes["main"] = _Process("main", self._main.pid, ours)
        try:
            self._hello(self._processes["main"])
            baseline = self._read_maps(self._processes["main"])
        except BaseException:
            self.close()
            raise
        self._baseline = frozenset(baseline)
        self._own = _own_tables(baseline)
        have = self._vmpte(self._processes["main"])
        if have != self._own.pages:
            self.close()
            raise RealMachineError(
                f"the executor starts with {have} page-table pages (VmPTE), not the"
                f" {self._own.pages} its own mappings imply: page tables cannot be compared"
            )
        specials = [_start(line) for line in baseline if line.endswith(TOP_DOWN_SPECIALS)]
        if not specials:
            self.close()
            raise RealMachineError("no [vvar] or [vdso] in the executor's maps")
        # Where the simulator's top-down area starts too: mmap(NULL) ends here.
        self.mmap_top = min(specials)

    def __enter__(self) -> RealMachine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pids(self) -> dict[str, int]:
        """Each live process's pid, by name, in the order they were created."""
        return {name: p.pid for name, p in self._processes.items()}

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        """Run a mainline call; anything else raises NotMainline."""
        if name not in _OPS:
            raise NotMainline(name)
        op, fewest, most = _OPS[name]
        if not fewest <= len(args) <= most:
            raise ValueError(f"{name}() cannot take {len(args)} arguments")
        kind, value, _ = self._call(self._process(process), op, args, name)
        if kind == _REPLY_OK and name == "memset":
            return CallResult("ok", 0)
        return self._result(kind, value, value)

    def fork(self, parent: str, child: str) -> CallResult:
        """Fork `parent`'s executor; the child gets a fresh socket to us."""
        if child in self._processes:
            raise ValueError(f"a process named {child!r} exists already")
        owner = self._process(parent)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            kind, value, _ = self._call(owner, _OP_FORK, [], "fork", theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if kind != _REPLY_OK:
            ours.close()
            return self._result(kind, value, value)
        forked = _Process(child, value, ours)
        self._processes[child] = forked
        with self._fatal():
            self._hello(forked)
        return CallResult("ok", value)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        """Write one byte, as `p[n] = 'x';` does."""
        kind, signo, _ = self._call(self._process(process), _OP_STORE, [addr, value], "store")
        return self._result(kind, signo, None)

    def load(self, process: str, addr: int) -> CallResult:
        """Read one byte: a read fault."""
        kind, signo, _ = self._call(self._process(process), _OP_LOAD, [addr], "load")
        return self._result(kind, signo, None)

    def maps(self) -> dict[str, list[str]]:
        """Each process's scenario mappings, without the executor's own."""
        if self._closed is not None:
            raise RealMachineError(self._closed)
        return {
            name: [line for line in self._read_maps(p) if self._is_scenario(line)]
            for name, p in self._processes.items()
        }

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        """The PROCMAP_QUERY ioctl (Linux 6.11+) on the executor's /proc/PID/maps,
        no flags: the VMA covering addr, as the selftests' find_vma_procmap() asks."""
        p = self._process(process)
        query = bytearray(_PROCMAP_QUERY.size)
        _PROCMAP_QUERY.pack_into(query, 0, _PROCMAP_QUERY.size, 0, addr & _U64, *[0] * 12)
        try:
            fd = os.open(f"/proc/{p.pid}/maps", os.O_RDONLY)
        except OSError as e:
            raise RealMachineError(f"cannot open the maps of {process!r}: {e.strerror}") from None
        try:
            fcntl.ioctl(fd, PROCMAP_QUERY, query)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise RealMachineError(f"PROCMAP_QUERY on {process!r}: {e.strerror}") from None
        finally:
            os.close(fd)
        fields = _PROCMAP_QUERY.unpack(query)
        return fields[3], fields[4]

    def resident(self) -> dict[str, dict[str, int]]:
        """Each process's resident pages per scenario VMA ("start-end" ->
        pages), from the Rss lines of /proc/PID/smaps. The zero page does not
        count, as in the kernel's smaps walk."""
        if self._closed is not None:
            raise RealMachineError(self._closed)
        return {
            name: {vma: kb // 4 for vma, kb in self._smaps_field(p, "Rss:").items()}
            for name, p in self._processes.items()
        }

    def pages(self) -> dict[str, ProcessPages]:
        """Each process's populated scenario pages, from its own
        /proc/self/pagemap and the kpage files (read by the executor), and
        smaps AnonHugePages per scenario VMA. Without root (no PFNs, no
        kpage files) only pagemap's present/swap and exclusive bits are
        known, and the records say so."""
        if self._closed is not None:
            raise RealMachineError(self._closed)
        found: dict[str, ProcessPages] = {}
        for name, p in self._processes.items():
            records: list[PageRecord] = []
            for line in self._read_maps(p):
                if not self._is_scenario(line):
                    continue
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                for lo in range(start, end, PAGES_PER_REQUEST << 12):
                    hi = min(end, lo + (PAGES_PER_REQUEST << 12))
                    records += self._read_pages(p, lo, hi)
            huge = {vma: kb // 4 for vma, kb in self._smaps_field(p, "AnonHugePages:").items()}
            fields = PAGE_FIELDS if self._full_pages else PAGEMAP_FIELDS
            found[name] = ProcessPages(records, huge, fields)
        return found

    def page_tables(self) -> dict[str, ProcessTables]:
        """Each process's page-table pages, from VmPTE in /proc/PID/status,
        with the executor's own tables (a forked child has copies of its
        parent's: copy_page_range() copies them all, the vDSO's with the
        VM_PFNMAP [vvar])."""
        if self._closed is not None:
            raise RealMachineError(self._closed)
        return {
            name: ProcessTables(self._vmpte(p), own=self._own)
            for name, p in self._processes.items()
        }

    def _vmpte(self, p: _Process) -> int:
        """VmPTE of /proc/PID/status, in 4 kB pages."""
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
        except OSError as e:
            raise RealMachineError(f"cannot read the status of {p.name!r}: {e.strerror}") from None
        for line in status.splitlines():
            if line.startswith("VmPTE:"):
                return int(line.split()[1]) // 4
        raise RealMachineError(f"no VmPTE in the status of {p.name!r}")

    def _read_pages(self, p: _Process, start: int, end: int) -> list[PageRecord]:
        kind, value, data = self._call(p, _OP_PAGES, [start, end], "pages")
        if kind != _REPLY_OK:
            raise RealMachineError(f"{p.name!r} could not read its pagemap: errno {value}")
        if value != _PAGES_FULL:
            self._full_pages = False
        return [_page_record(fields, self._full_pages) for fields in _PAGE_RECORD.iter_unpack(data)]

    def _smaps_field(self, p: _Process, field: str) -> dict[str, int]:
        """One smaps field (in kB) per scenario VMA ("start-end")."""
        values: dict[str, int] = {}
        current: str | None = None
        for line in self._read_maps(p, smaps=True):
            if _VMA_LINE.match(line):
                header = normalise_maps_line(line)
                current = header.split()[0] if self._is_scenario(header) else None
            elif current is not None and line.startswith(field):
                values[current] = int(line.split()[1])
        return values

    def close(self) -> None:
        """Kill every executor, descendants first, and wait until each is gone.

        Executors ignore SIGCHLD, so a killed child is reaped by its living
        parent; killing leaves first means none is left to init.
        """
        if self._closed is None:
            self._closed = "the machine is closed"
        for p in reversed(self._processes.values()):
            p.sock.close()
            if p.name == "main":
                continue
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            _wait_gone(p.pid)
        if self._main.poll() is None:
            # The session holds every executor; a last sweep for stragglers.
            with suppress(ProcessLookupError):
                os.killpg(self._main.pid, signal.SIGKILL)
            self._main.wait()
        self._processes.clear()

    def _is_scenario(self, line: str) -> bool:
        fields = line.split(maxsplit=5)
        path = fields[5] if len(fields) > 5 else ""
        if path:
            return path == SHARED_ANON_PATH
        return not (_start(line) < IMAGE_END and line in self._baseline)

    def _process(self, name: str) -> _Process:
        if self._closed is not None:
            raise RealMachineError(self._closed)
        try:
            return self._processes[name]
        except KeyError:
            raise ValueError(f"no process named {name!r}") from None

    def _result(self, kind: int, value: int, ok_value: int | None) -> CallResult:
        if kind == _REPLY_OK:
            return CallResult("ok", ok_value)
        if kind == _REPLY_ERRNO:
            return CallResult(ERRNO_NAME.get(value) or errno.errorcode.get(value, str(value)), -1)
        return CallResult(signal.Signals(value).name, None)

    def _hello(self, p: _Process) -> None:
        kind, persona, _ = self._reply(p, "start")
        if kind != _REPLY_OK or not persona & ADDR_NO_RANDOMIZE:
            raise RealMachineError(
                f"executor {p.name!r} could not turn off ASLR (personality {persona:#x})"
            )

    def _read_maps(self, p: _Process, smaps: bool = False) -> list[str]:
        kind, value, text = self._call(p, _OP_MAPS, [int(smaps)], "smaps" if smaps else "maps")
        if kind != _REPLY_OK:
            raise RealMachineError(f"{p.name!r} could not read its maps: errno {value}")
        return (
            text.decode().splitlines()
            if smaps
            else [normalise_maps_line(line) for line in text.decode().splitlines()]
        )

    def _call(
        self,
        p: _Process,
        op: int,
        args: list[int],
        what: str,
        passed: socket.socket | None = None,
    ) -> tuple[int, int, bytes]:
        """Send one command and wait for its reply; any failure closes all."""
        args = [a & _U64 for a in args] + [0] * (6 - len(args))
        command = _COMMAND.pack(op, *args)
        fds = [passed.fileno()] if passed is not None else []
        with self._fatal():
            p.sock.settimeout(self.timeout)
            try:
                sent = socket.send_fds(p.sock, [command], fds)
                if sent != len(command):
                    p.sock.sendall(command[sent:])
            except OSError as e:
                raise RealMachineError(
                    f"executor {p.name!r} (pid {p.pid}) died before {what} ({e.strerror})"
                ) from e
            return self._reply(p, what)

    @contextmanager
    def _fatal(self) -> Iterator[None]:
        """A failed or interrupted exchange leaves the protocol out of step:
        kill everything rather than read a stale reply later."""
        try:
            yield
        except BaseException as e:
            self.close()
            self._closed = f"the machine was closed after an earlier error: {e}"
            raise

    def _reply(self, p: _Process, what: str) -> tuple[int, int, bytes]:
        deadline = time.monotonic() + self.timeout
        kind, value, length = _REPLY.unpack(_recv_exact(p, _REPLY.size, what, deadline))
        return kind, value, _recv_exact(p, length, what, deadline)


def _page_record(raw: tuple[int, ...], full: bool) -> PageRecord:
    """A PageRecord from the executor's raw record. `folio` is the head
    PFN, which only the comparison's renumbering sees; without root the
    PFN, count and flags are unknown (None)."""
    addr, pagemap, count, flags, head, nr = raw
    entry = "present" if pagemap & PM_PRESENT else "swap"
    exclusive = bool(pagemap & PM_MMAP_EXCLUSIVE)
    pfn = pagemap & PM_PFN_MASK
    if not full or entry != "present" or not pfn:
        return PageRecord(
            addr, entry, None, None, None, None, None, None, None, None, exclusive, None
        )
    zero = None
    if flags & KPF_ZERO_PAGE:
        zero = "huge_zero" if flags & KPF_THP else "zero"
    return PageRecord(
        addr,
        entry,
        zero,
        None if zero else pfn - head,
        nr.bit_length() - 1,
        head,
        None,
        None,
        bool(flags & KPF_ANON),
        count,
        exclusive,
        None,
    )


def _own_tables(maps: list[str]) -> TablePages:
    """The page tables the executor's own mappings hold at the start: one
    of each level over every part of the user address space they cover
    (its static image and bss are all touched, and so are the stack and
    the vDSO's page table); [vsyscall] lies above TASK_SIZE."""
    pte: set[int] = set()
    for line in maps:
        start, end = (int(x, 16) >> PAGE_SHIFT for x in line.split()[0].split("-"))
        if end <= TASK_SIZE >> PAGE_SHIFT:
            pte.update(range(start >> PMD_SHIFT, ((end - 1) >> PMD_SHIFT) + 1))
    pmd = {i >> (PUD_SHIFT - PMD_SHIFT) for i in pte}
    pud = {i >> (PGD_SHIFT - PUD_SHIFT) for i in pmd}
    return TablePages(frozenset(pte), frozenset(pmd), frozenset(pud))


def _start(line: str) -> int:
    return int(line.split("-", 1)[0], 16)


def _recv_exact(p: _Process, length: int, what: str, deadline: float) -> bytes:
    """Read exactly `length` bytes before `deadline`, or raise."""
    data = bytearray()
    while len(data) < length:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExecutorTimeout(f"no reply from {p.name!r} (pid {p.pid}) to {what}")
        p.sock.settimeout(remaining)
        try:
            chunk = p.sock.recv(length - len(data))
        except TimeoutError:
            raise ExecutorTimeout(f"no reply from {p.name!r} (pid {p.pid}) to {what}") from None
        except OSError as e:
            chunk = b""
            reason = f" ({e.strerror})"
        else:
            reason = ""
        if not chunk:
            raise RealMachineError(f"executor {p.name!r} (pid {p.pid}) died during {what}{reason}")
        data += chunk
    return bytes(data)


def _wait_gone(pid: int, limit: float = 5.0) -> None:
    """Poll until a killed, non-child process has been reaped."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.001)

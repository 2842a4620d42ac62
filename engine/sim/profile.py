"""The host settings kernel behaviour depends on: a named machine profile.

Ours. The kernel reads these from sysfs, debugfs and its config; the
engine reads them from the profile a Kernel is built with, `DEFAULT`
(named "fc-6.18-madvise") matching the hosts the differential tests run on
(6.18.44, read from /sys/kernel/mm/transparent_hugepage/*, /proc/swaps,
/proc/config.gz). `host_profile()` reads this machine's values, so a test
can say when the default no longer matches.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

THP_SYSFS = Path("/sys/kernel/mm/transparent_hugepage")


@dataclass(frozen=True)
class MachineProfile:
    """One machine's settings, each as the kernel names it."""

    name: str
    thp_enabled: str
    """transparent_hugepage/enabled: "always", "madvise" or "never"."""
    thp_defrag: str
    """transparent_hugepage/defrag (recorded; every THP allocation succeeds here)."""
    thp_use_zero_page: bool
    """transparent_hugepage/use_zero_page: a read fault may map the huge zero page."""
    shmem_enabled: str
    """transparent_hugepage/shmem_enabled: "never" means shmem folios are small."""
    fault_around_bytes: int
    """debugfs fault_around_bytes (64 KiB by default; debugfs may refuse to show it)."""
    pt_reclaim: bool
    """CONFIG_PT_RECLAIM: MADV_DONTNEED frees the PTE tables it covers whole."""
    swap: bool
    """A swap device is configured (/proc/swaps lists one)."""


DEFAULT = MachineProfile(
    name="fc-6.18-madvise",
    thp_enabled="madvise",
    thp_defrag="madvise",
    thp_use_zero_page=True,
    shmem_enabled="never",
    fault_around_bytes=65536,
    pt_reclaim=True,
    swap=False,
)
PROFILES = {DEFAULT.name: DEFAULT}


def _selected(path: Path) -> str:
    """The [bracketed] choice of a sysfs setting, or its whole value."""
    text = path.read_text().strip()
    if "[" in text:
        return text.split("[", 1)[1].split("]", 1)[0]
    return text


def host_profile() -> MachineProfile:
    """This machine's settings, where it shows them (else DEFAULT's value)."""
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    config = _kernel_config()
    return MachineProfile(
        name="host",
        thp_enabled=_selected(THP_SYSFS / "enabled"),
        thp_defrag=_selected(THP_SYSFS / "defrag"),
        thp_use_zero_page=_selected(THP_SYSFS / "use_zero_page") == "1",
        shmem_enabled=_selected(THP_SYSFS / "shmem_enabled"),
        fault_around_bytes=_fault_around_bytes(),
        pt_reclaim="CONFIG_PT_RECLAIM=y" in config if config else DEFAULT.pt_reclaim,
        swap=bool(swaps),
    )


def _fault_around_bytes() -> int:
    try:
        return int(Path("/sys/kernel/debug/fault_around_bytes").read_text())
    except OSError:
        return DEFAULT.fault_around_bytes


def _kernel_config() -> str:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read()
    except OSError:
        return ""

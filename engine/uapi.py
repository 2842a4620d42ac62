"""The user-space ABI of the calls the engine models, with x86-64 values.

Models include/uapi/asm-generic/mman-common.h, include/uapi/linux/mman.h
and include/uapi/asm-generic/errno-base.h (errno.h). MREMAP_RELOCATE_ANON
and MREMAP_MUST_RELOCATE_ANON are the values the June 2025 v1 series
proposed and never merged. The dictionaries are the names a scenario may
use; the constants below them are bits the kernel checks but a scenario
cannot name.
"""

PROT = {
    "PROT_NONE": 0x0,
    "PROT_READ": 0x1,
    "PROT_WRITE": 0x2,
    "PROT_EXEC": 0x4,
}

MAP = {
    "MAP_SHARED": 0x01,
    "MAP_PRIVATE": 0x02,
    "MAP_SHARED_VALIDATE": 0x03,
    "MAP_FIXED": 0x10,
    "MAP_ANONYMOUS": 0x20,
    "MAP_ANON": 0x20,
    "MAP_GROWSDOWN": 0x0100,
    "MAP_DENYWRITE": 0x0800,
    "MAP_EXECUTABLE": 0x1000,
    "MAP_LOCKED": 0x2000,
    "MAP_NORESERVE": 0x4000,
    "MAP_POPULATE": 0x8000,
    "MAP_NONBLOCK": 0x10000,
    "MAP_STACK": 0x20000,
    "MAP_HUGETLB": 0x40000,
    "MAP_FIXED_NOREPLACE": 0x100000,
}

MREMAP = {
    "MREMAP_MAYMOVE": 1,
    "MREMAP_FIXED": 2,
    "MREMAP_DONTUNMAP": 4,
    "MREMAP_RELOCATE_ANON": 8,
    "MREMAP_MUST_RELOCATE_ANON": 16,
}

MADV = {
    "MADV_NORMAL": 0,
    "MADV_RANDOM": 1,
    "MADV_SEQUENTIAL": 2,
    "MADV_WILLNEED": 3,
    "MADV_DONTNEED": 4,
    "MADV_FREE": 8,
    "MADV_REMOVE": 9,
    "MADV_DONTFORK": 10,
    "MADV_DOFORK": 11,
    "MADV_MERGEABLE": 12,
    "MADV_UNMERGEABLE": 13,
    "MADV_HUGEPAGE": 14,
    "MADV_NOHUGEPAGE": 15,
    "MADV_DONTDUMP": 16,
    "MADV_DODUMP": 17,
    "MADV_WIPEONFORK": 18,
    "MADV_KEEPONFORK": 19,
    "MADV_COLD": 20,
    "MADV_PAGEOUT": 21,
    "MADV_POPULATE_READ": 22,
    "MADV_POPULATE_WRITE": 23,
}

ERRNO = {
    "EPERM": 1,
    "ENOENT": 2,
    "ESRCH": 3,
    "EINTR": 4,
    "EBADF": 9,
    "EAGAIN": 11,
    "ENOMEM": 12,
    "EACCES": 13,
    "EFAULT": 14,
    "EBUSY": 16,
    "EEXIST": 17,
    "ENODEV": 19,
    "EINVAL": 22,
    "EOVERFLOW": 75,
}
ERRNO_NAME = {number: name for name, number in ERRNO.items()}

PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000
MAP_TYPE = 0x0F  # the mask of MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE

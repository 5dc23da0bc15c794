"""Confine the calling process: resource limits, Landlock, a user and network namespace, no capabilities.

Standard library only: the sandboxed runner (:mod:`tinytorch.grading.runner`) loads this file by
its path and confines itself *before* it imports NumPy or TinyTorch, so nothing it loads afterwards
runs unconfined. Every step is applied when the platform allows it and reported otherwise; the
runner writes what took effect into its first status message, and the gradebook keeps it.

- **Resource limits** (POSIX): CPU seconds, address space, file size, open files, no core files,
  and processes. ``RLIMIT_NPROC`` counts every process of the user, so :func:`forbid_processes`
  sets it to 1: no fork, no thread. (Root is exempt from it, hence the user namespace below.)
- **A user and network namespace** (Linux, when unprivileged namespaces are allowed): the process
  keeps its user id but becomes an unprivileged user of a fresh namespace. Root loses its
  exemption from ``RLIMIT_NPROC`` and its power to raise hard limits, and the network namespace
  has no interfaces but a down loopback: no network at all.
- **No capabilities** and ``no_new_privs``: nothing can raise a hard limit or regain privileges.
- **Landlock** (Linux 5.13+): the file system is read-only, and readable only beneath the paths
  the caller names; writable only beneath the paths it names. From ABI 4 TCP connect and bind are
  refused; from ABI 6 the process cannot signal, or reach the abstract sockets of, any process
  outside its own Landlock domain (the grader, other submissions' runners).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import sys

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same numbers on every architecture (new syscall table)
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CAPABILITY_VERSION_3 = 0x20080522

# Landlock file-system rights, by the ABI that introduced them.
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

_READ = _FS_READ_FILE | _FS_READ_DIR
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_WRITE = (
    _READ | _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_DIR | _FS_MAKE_REG | _FS_TRUNCATE
)

#: System folders the interpreter and its shared libraries are read from, besides ``sys.path``.
SYSTEM_READ_PATHS = (
    "/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/local/lib",
    "/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo", "/etc/os-release",
    "/proc/self", "/sys/devices/system/cpu", "/dev/urandom", "/dev/null",
)  # fmt: skip


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers; 0 when there is none (not Linux, too old, disabled)."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return 0
    version = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def set_limits(cpu_seconds: int | None, memory_bytes: int | None, file_bytes: int | None, open_files: int = 256) -> list[str]:
    """Set hard and soft limits on this process; returns the names of those that took effect.

    The CPU soft limit sends SIGXCPU; one second later the hard limit kills. Limits are only ever
    lowered: an already lower hard limit is kept.
    """
    applied = []

    def lower(name: str, which: int, value: int, hard_extra: int = 0) -> None:
        try:
            soft, hard = resource.getrlimit(which)
            cap = value + hard_extra
            new_hard = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
            resource.setrlimit(which, (min(value, new_hard), new_hard))
            applied.append(name)
        except (ValueError, OSError):
            pass

    lower("core", resource.RLIMIT_CORE, 0)
    lower("open files", resource.RLIMIT_NOFILE, open_files)
    if cpu_seconds is not None:
        lower("cpu", resource.RLIMIT_CPU, int(cpu_seconds), hard_extra=1)
    if memory_bytes is not None and hasattr(resource, "RLIMIT_AS"):
        lower("address space", resource.RLIMIT_AS, int(memory_bytes))
    if file_bytes is not None:
        lower("file size", resource.RLIMIT_FSIZE, int(file_bytes))
    return applied


def forbid_processes() -> bool:
    """No new process or thread from now on (``RLIMIT_NPROC`` = 1); False where that cannot be set."""
    if not hasattr(resource, "RLIMIT_NPROC"):
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
    except (ValueError, OSError):
        return False
    # Root in the initial user namespace is exempt from RLIMIT_NPROC: the limit is set, but not in force.
    return os.geteuid() != 0 or _in_child_user_namespace()


def _in_child_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def enter_namespaces() -> bool:
    """Move into a new user and network namespace, keeping the same user and group ids inside.

    Must be called while the process has one thread. False when the platform refuses (not Linux,
    unprivileged namespaces disabled, or already too many).
    """
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return False
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNET)) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def drop_privileges() -> bool:
    """``no_new_privs``, not dumpable (no ptrace, no /proc/<pid>/mem), and an empty capability set."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return False
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    return libc.capset(ctypes.byref(header), data) == 0


def die_with_parent() -> None:
    """Be killed when the process that started this one dies (Linux), so no runner outlives the grader."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (Linux), so a daemon started inside can still be reaped."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def landlock(read: list[str], write: list[str]) -> int:
    """Restrict this process (and every process it starts) to reading beneath ``read`` and writing
    beneath ``write``; refuse TCP and, where the kernel can, signals and abstract sockets beyond
    this process's domain. Returns the ABI in force, 0 when Landlock is unavailable.

    Each call adds a layer: a later call can only narrow what an earlier one allowed.
    """
    abi = landlock_abi()
    if abi <= 0:
        return 0
    libc = _libc()
    fs_rights = _fs_rights(abi)
    fields = [fs_rights]
    if abi >= 4:
        fields.append(_NET_BIND_TCP | _NET_CONNECT_TCP)
    if abi >= 6:
        fields.append(_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL)
    attr = (ctypes.c_uint64 * len(fields))(*fields)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return 0
    try:
        for paths, rights in ((read, _READ), (write, _WRITE & fs_rights)):
            for path in paths:
                _allow(libc, ruleset, path, rights)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return 0
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return 0
    finally:
        os.close(ruleset)
    return abi


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    """Add one path-beneath rule; a path that does not exist is skipped (it cannot be reached anyway)."""

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
            if path == "/dev/null":
                rights |= _FS_WRITE_FILE
        rule = PathBeneath(rights, fd)
        if libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            error = ctypes.get_errno()
            if error not in (errno.EINVAL,):
                raise OSError(error, f"landlock: cannot add a rule for {path}")
    finally:
        os.close(fd)

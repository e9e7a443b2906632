"""Runs untrusted Python (a policy's completion plus its tests) in a throwaway child process with
time, memory and network limits, for the RL code verifier. Pure: standard library only, no Django.

What a run gets, outermost first. `SandboxResult.layers` names the ones that were actually in force
for that run, because the kernel-level ones depend on the privileges of whoever calls this.

Always, on any Linux:
- process: a separate interpreter (`python -I -B -X utf8`; isolated mode ignores PYTHON* variables
  and the user site, and does not put the working directory on sys.path). `-S` is not used: it
  would drop `exit()`/`quit()`, which generated code calls, and the venv's site-packages (numpy),
  which some tasks import.
- temp-dir: the working directory is a fresh `tempfile.TemporaryDirectory`, deleted afterwards.
- clean-env: the environment is rebuilt from scratch (PATH, HOME and TMPDIR pointing at the temp
  dir, a UTF-8 locale, single-threaded BLAS). Nothing of the caller's (DATABASE_URL, secrets) leaks.
- rlimits: RLIMIT_AS (`memory_mb`; a large allocation raises MemoryError in the child),
  RLIMIT_CPU (timeout + 1 s, a backstop for the wall clock), RLIMIT_FSIZE (16 MiB per file,
  stdout included), RLIMIT_NOFILE (256), RLIMIT_CORE (0). RLIMIT_NPROC is not set: it counts every
  process of the user system-wide (so a shared service account would trip it) and root ignores it.
- wall clock and clean-up: the child is a small supervisor (its own session, a child subreaper)
  that forks a worker in its own process group to run the code. At the deadline the worker's
  group is killed with SIGKILL; after every run the supervisor kills and reaps whatever the code
  left behind, including processes that left the group (they are reparented to the supervisor,
  not to an init that might never reap them). Only then does run_python return.
- audit-hook: before the user code runs, `sys.addaudithook` refuses socket connect/bind/sendto/
  sendmsg, DNS look-ups, process spawning (exec, posix_spawn, system, subprocess: a new process
  would start without the hook) and ctypes loading/calling. Python code cannot remove an audit
  hook, but it is a speed bump, not a wall: C extensions, writing the process's own memory or a
  bug in the hook's coverage get past it. The layers below are the walls.
- no-new-privs, no-capabilities: the bounding set and all capabilities are dropped (as root too:
  uid 0 stays, but without CAP_SYS_ADMIN it cannot mount, re-enter the host's namespaces, or
  override file permissions of files it does not own).
- seccomp (x86_64, aarch64): a kernel filter that fails socket(AF_INET/AF_INET6/AF_PACKET), every
  connect() (Unix sockets too: a host's Docker or PostgreSQL socket is a file), io_uring, ptrace,
  process_vm_writev, and setsid()/setpgid() (so no child can leave the process group that is
  killed at the deadline) with EACCES. Inherited by every child; cannot be lifted.

Where the kernel allows unshare() (root, or unprivileged user namespaces):
- net-namespace: a new network namespace with only a loopback that is down: nothing is reachable,
  not even the host's 127.0.0.1.
- pid-namespace: the user code is PID 1 of its own namespace, so when it dies the kernel kills
  every process it started (even ones that left the process group), and host processes are
  invisible; with a fresh read-only /proc (private-proc) their environments cannot be read.
- mount-namespace, readonly-fs: every mount is remounted read-only except the temp dir, so a
  stray `shutil.rmtree` cannot touch the repository or the database files.
- private-dev (root only): /dev is a small tmpfs with null, zero, full, random, urandom and an
  8 MiB /dev/shm only (root keeps owner access to raw disks otherwise; capabilities do not cover
  that). Without it, /dev/shm is read-only and multiprocessing's locks fail.
- ipc/uts namespaces: cheap, keep System V IPC and the hostname private.

Under bubblewrap (isolation="bwrap", the default where `bwrap` is installed and works) the
namespaces and the filesystem come from bwrap instead, and the code sees only /usr, the
interpreter's own prefix (site-packages hidden), a fresh /proc, a minimal /dev, its sources
read-only in /src and /work: a tmpfs of `disk_mb` (the disk limit) that the bootstrap mounts. As
root the bootstrap then switches to uid 65534 (unprivileged-uid); as anyone else bwrap makes a user
namespace. The code's process cannot fork (no-fork: the seccomp filter refuses new processes,
threads stay allowed), so RLIMIT_AS, RLIMIT_CPU and the open-file limit hold for the whole tree.
The supervisor keeps the wall clock itself, so the deadline holds inside bwrap's PID namespace.

In a default Docker container unshare() and mount() are refused: there the "basic" run keeps
process, temp-dir, clean-env, rlimits, audit-hook, no-new-privs, no-capabilities and seccomp. The
shipped compose file gives the workers a seccomp profile that lets bwrap make its user namespace
(deploy/seccomp-sandbox.json).

Not covered by the sandbox itself: what the code is allowed to compute. Verdicts must not come
from inside it (`completed` can be forged by the code): the code verifier grades through
rewards/grader.py, which runs the tests in a second sandbox. In "basic" mode the code can read
whatever the calling user can, and the disk is limited per file only; the code verifier refuses
to run on such a machine unless told it may (rewards/code_verifier.py).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "error", "timeout", "memory", "blocked"]
Isolation = Literal["auto", "bwrap", "basic"]

FILE_SIZE_LIMIT = 16 * 1024 * 1024  # bytes, per file the sandbox writes (its stdout/stderr too)
OPEN_FILES_LIMIT = 256
BLOCKED_MARKER = "[sandbox] blocked: "  # the audit hook writes this to stderr before refusing
_DONE = b"done\n"  # the bootstrap writes this to the report pipe when every part ran to its end
_TIMEOUT = b"timeout\n"  # the supervisor writes this when it killed the code at the deadline
_GRACE_S = 1.5  # how long past the deadline the caller waits for the supervisor before killing it
# Layer groups a test may switch off, to show that each one blocks the network on its own.
_OPTIONAL_GROUPS = frozenset({"namespaces", "seccomp", "audit-hook"})


@dataclass(frozen=True)
class SandboxResult:
    status: Status
    returncode: int | None  # negative: killed by that signal (Popen's convention)
    stdout: str  # clipped to max_output characters (head and tail kept)
    stderr: str
    duration_s: float  # wall clock, interpreter start-up included
    reason: str  # one line in words: why this status
    layers: tuple[str, ...] = ()  # the isolation layers that were in force (see module docstring)
    completed: bool = False  # every part ran to its end: no sys.exit()/os._exit() before the last line
    pid: int | None = None  # the sandbox's process id, also its process-group id; gone on return

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(code: str, **options) -> SandboxResult:
    """Run `code` as a script in the sandbox and report how it ended (options: those of
    run_python_parts). Never raises for anything the code does; raises ValueError for nonsensical
    limits."""
    return run_python_parts([("solution.py", code)], **options)


def run_python_parts(
    parts: Sequence[tuple[str, str]], *, timeout_s: float = 5.0, memory_mb: int = 256, max_output: int = 20000,
    disable: Sequence[str] = (), isolation: Isolation = "auto", disk_mb: int = 64, allow_fork: bool = False,
    pass_fds: Sequence[int] = (), hand_over_fds: bool = False,
) -> SandboxResult:
    """Run several sources one after another in one `__main__` namespace: the same as running their
    concatenation, except that `completed` then tells whether the last one ran to its end (which
    the code can forge: verdicts come from rewards/grader.py, not from this).

    isolation: "bwrap" (bubblewrap: the minimal filesystem view, see _bwrap_argv), "basic" (the
    in-house layers of the module docstring) or "auto" (bwrap when it works here). disk_mb: the
    size of the work dir's tmpfs under bwrap. allow_fork: let the code start processes (off: one
    process, so every limit holds for the whole tree). pass_fds: more descriptors the code gets,
    closed here once it started when hand_over_fds."""
    if not timeout_s > 0:
        raise ValueError("timeout_s must be above 0")
    if memory_mb < 32:
        raise ValueError("memory_mb must be at least 32: the interpreter alone needs about 20 MB")
    if max_output < 0:
        raise ValueError("max_output must not be negative")
    if disk_mb < 1:
        raise ValueError("disk_mb must be at least 1")
    if isolation not in ("auto", "bwrap", "basic"):
        raise ValueError("isolation must be 'auto', 'bwrap' or 'basic'")
    use_bwrap = isolation == "bwrap" or (isolation == "auto" and bwrap_path() is not None)
    if use_bwrap and bwrap_path() is None:
        raise ValueError("isolation='bwrap' but bubblewrap (bwrap) is not installed")
    unknown = set(disable) - _OPTIONAL_GROUPS
    if unknown:
        raise ValueError(f"unknown layer group(s) {sorted(unknown)}; use {sorted(_OPTIONAL_GROUPS)}")

    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        paths = []
        for name, source in parts:
            path = os.path.join(workdir, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(source)
            paths.append(path)
        report_read, report_write = os.pipe()
        config = {
            "workdir": workdir, "parts": paths, "report_fd": report_write,
            "memory_bytes": memory_mb * 1024 * 1024, "cpu_seconds": int(timeout_s) + 1,
            "disable": sorted(disable), "allow_fork": allow_fork, "wall_s": timeout_s,
        }
        if use_bwrap:
            # Inside, the sources are read-only under /src and the code works in /work, a tmpfs
            # of disk_mb that the bootstrap mounts.
            config.update(workdir=_WORK, parts=[f"{_SRC}/{os.path.basename(p)}" for p in paths],
                          bwrap=True, disk_bytes=disk_mb * 1024 * 1024, root=os.geteuid() == 0)
            os.chmod(workdir, 0o755)
            for path in paths:
                os.chmod(path, 0o644)
        home = _WORK if use_bwrap else workdir
        env = {
            # Names the run in every process of it (the host's temp dir name), so a test can find
            # leftovers by /proc/<pid>/environ; says nothing the code could use.
            "SANDBOX_RUN": os.path.basename(workdir),
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            # glibc reserves 64 MiB of address space per malloc arena and OpenBLAS a buffer per
            # thread; under RLIMIT_AS that would turn a few threads into MemoryError.
            "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }
        started = time.monotonic()
        timed_out = False
        try:
            if use_bwrap:
                argv = _bwrap_argv(workdir) + [_interpreter(), "-I", "-B", "-X", "utf8", _BOOT, json.dumps(config)]
            else:
                argv = [sys.executable, "-I", "-B", "-X", "utf8", os.path.abspath(__file__), json.dumps(config)]
            proc = subprocess.Popen(
                argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                pass_fds=(report_write, *pass_fds), start_new_session=True,
            )
        finally:
            os.close(report_write)
            if hand_over_fds:
                # The sandbox holds them now: ours would keep a pipe open past its end.
                for fd in pass_fds:
                    os.close(fd)
        try:
            try:
                # The supervisor keeps the deadline itself (under bubblewrap it is out of our
                # reach, in its own PID namespace); this wait is the backstop.
                returncode: int | None = proc.wait(timeout=timeout_s + _GRACE_S)
            except subprocess.TimeoutExpired:
                timed_out = True
                # The supervisor kills the worker's group and reaps it; killing the supervisor
                # too would orphan the worker into a zombie under init.
                proc.send_signal(signal.SIGUSR1)
                try:
                    returncode = proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    returncode = proc.wait()
            duration = time.monotonic() - started
            # Last resort, for a supervisor that died before it could clean up.
            _kill_group(proc.pid)
            report = read_available(report_read)
        finally:
            os.close(report_read)
        stdout_text, stderr_text = _read_output(out), _read_output(err)

    layers: tuple[str, ...] = ()
    lines = report.split(b"\n")
    try:
        layers = tuple(json.loads(lines[0])["layers"])
    except (ValueError, KeyError, TypeError):
        pass
    completed = _DONE.strip() in lines[1:]
    timed_out = timed_out or _TIMEOUT.strip() in lines[1:]
    status, reason = _classify(returncode, stderr_text, timed_out=timed_out, timeout_s=timeout_s, memory_mb=memory_mb)
    return SandboxResult(
        status=status, returncode=returncode, stdout=_clip(stdout_text, max_output),
        stderr=_clip(stderr_text, max_output), duration_s=round(duration, 4), reason=reason, layers=layers,
        completed=completed and status == "ok", pid=proc.pid,
    )


_WORK, _SRC, _BOOT = "/work", "/src", "/sandbox/boot.py"


@functools.cache
def bwrap_path() -> str | None:
    """bubblewrap, when installed and able to start a sandbox here (a container may forbid the
    namespaces it needs); None otherwise."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run(_bwrap_argv(None, path) + [_interpreter(), "-I", "-S", "-c", "pass"],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    return path if probe.returncode == 0 else None


def _interpreter() -> str:
    # The real binary, not a venv's symlink: the view holds the base installation only.
    return os.path.realpath(sys.executable)


def _bwrap_argv(sources: str | None, path: str | None = None) -> list[str]:
    """The filesystem view: /usr (libc, and the interpreter when it lives there), the interpreter's
    own prefix, a fresh /proc and a minimal /dev, the sources read-only, an empty /work; nothing
    else (no /etc, /home, /root, /tmp, project, settings or databases). site-packages are hidden
    behind empty tmpfs: the standard library only.

    As root, bwrap runs without a user namespace (it could not then reach an interpreter under a
    0700 /root) and keeps the capabilities the bootstrap needs to mount /work's size-limited tmpfs
    and switch to uid 65534; the bootstrap drops them all before the code runs. As anyone else it
    makes a user namespace, where those capabilities reach nothing outside."""
    prefix = os.path.realpath(sys.base_prefix)
    argv = [path or bwrap_path() or "bwrap", "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        argv += ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_CHOWN"]
    else:
        argv += ["--unshare-user", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        target = os.path.join("/", name)
        if os.path.islink(target):
            argv += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            argv += ["--ro-bind", target, target]
    if not prefix.startswith("/usr/"):
        # Parents are created with the source's mode otherwise (a 0700 /root locks uid 65534 out).
        parts = prefix.strip("/").split("/")
        for depth in range(1, len(parts)):
            argv += ["--perms", "0755", "--dir", "/" + "/".join(parts[:depth])]
        argv += ["--ro-bind", prefix, prefix]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for hidden in (f"{prefix}/lib/{version}/site-packages", f"/usr/lib/{version}/site-packages",
                   "/usr/lib/python3/dist-packages", f"/usr/local/lib/{version}/site-packages",
                   f"/usr/local/lib/{version}/dist-packages"):
        if os.path.isdir(hidden):
            argv += ["--tmpfs", hidden]
    argv += ["--proc", "/proc", "--dev", "/dev", "--dir", _WORK,
             "--ro-bind", os.path.abspath(__file__), _BOOT, "--chdir", "/"]
    if sources is not None:
        argv += ["--ro-bind", sources, _SRC]
    return argv


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_available(fd: int, *, limit: int | None = None) -> bytes:
    """What a pipe holds now, up to `limit` bytes, without waiting. Non-blocking: a child that
    escaped the kill could still hold the write end open."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while limit is None or size < limit:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_output(fh) -> str:
    fh.seek(0)
    return fh.read(FILE_SIZE_LIMIT).decode("utf-8", errors="replace")


def _clip(text: str, limit: int) -> str:
    # Head and tail: stdout's first lines and a traceback's last lines are what a reader wants.
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n...[{len(text) - limit} characters cut]...\n{text[len(text) - tail:] if tail else ''}"


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:200]
    return ""


def _classify(
    returncode: int | None, stderr: str, *, timed_out: bool, timeout_s: float, memory_mb: int,
) -> tuple[Status, str]:
    if timed_out:
        return "timeout", f"killed at the {timeout_s:g} s wall-clock limit"
    blocked = [line[len(BLOCKED_MARKER):].strip() for line in stderr.splitlines() if line.startswith(BLOCKED_MARKER)]
    if blocked:
        return "blocked", f"the sandbox refused {blocked[0]} (no network, no new processes)"
    last = _last_line(stderr)
    if last.startswith("MemoryError"):
        return "memory", f"MemoryError: over the {memory_mb} MB memory limit"
    if returncode == 0:
        return "ok", "exited with code 0"
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            # Not our kill (that is timed_out): the CPU-time limit, which threads reach faster than the clock.
            return "timeout", f"killed by {signal.Signals(sig).name}: CPU-time limit"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return "error", f"killed by signal {name}"
    return "error", f"exited with code {returncode}" + (f": {last}" if last else "")


# ----------------------------------------------------------------------------------------------
# Inside the sandbox. Everything below runs in the child, in this order: namespaces, read-only
# mounts, private /dev, rlimits, fork into the PID namespace, fresh /proc, drop capabilities,
# no-new-privs, seccomp, audit hook, user code. Each kernel layer is best effort and reported.
# ----------------------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 24, 22, 36, 38
_MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME,
                "strictatime": MS_STRICTATIME}


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> bool:
    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    return libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) == 0


def _unshare(libc, layers: list[str]) -> int:
    base = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    # Root can unshare directly; anyone else only inside a new user namespace, where allowed.
    for flags in (base, base | CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        if libc.unshare(flags) == 0:
            if flags & CLONE_NEWUSER:
                layers.append("user-namespace")
            if flags & CLONE_NEWNET:
                layers.append("net-namespace")
            if flags & CLONE_NEWPID:
                layers.append("pid-namespace")
            if flags & CLONE_NEWIPC:
                layers.append("ipc-uts-namespaces")
            if flags & CLONE_NEWNS:
                layers.append("mount-namespace")
            return flags
    return 0


def _mount_points() -> list[tuple[str, int]]:
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            # Mount points escape spaces and the like as \040 (octal).
            target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            flags = 0
            for option in fields[5].split(","):
                flags |= _MOUNT_FLAGS.get(option, 0)
            points.append((target, flags))
    return points


def _readonly_filesystem(libc, workdir: str, layers: list[str]) -> bool:
    # Private first, so nothing done here propagates back to the host's mount table.
    if not _mount(libc, None, "/", None, MS_REC | MS_PRIVATE):
        return False
    # The temp dir becomes its own mount, the one that stays writable.
    if not _mount(libc, workdir, workdir, None, MS_BIND | MS_REC):
        return False
    all_done = True
    for target, flags in _mount_points():
        if target == workdir or flags & MS_RDONLY:
            continue
        keep = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
        if not _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep):
            all_done = False
    # The cwd still points into the mount under the new bind mount, which is now read-only.
    os.chdir(workdir)
    if all_done:
        layers.append("readonly-fs")
    return all_done


def _private_dev(libc, layers: list[str]) -> None:
    import stat

    if not _mount(libc, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755"):
        return
    try:
        for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
            os.mknod(f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(1, minor))
            os.chmod(f"/dev/{name}", 0o666)  # mknod honours the umask
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"/dev/{name}")
    except OSError:
        # No CAP_MKNOD (a user namespace): keep the host's /dev, read-only already.
        libc.umount2(b"/dev", MNT_DETACH)
        return
    # multiprocessing's locks live in /dev/shm; a small private one (tmpfs is RAM outside RLIMIT_AS).
    os.mkdir("/dev/shm", 0o1777)
    _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=8m,mode=1777")
    _mount(libc, None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    layers.append("private-dev")


def _set_limits(config: dict, layers: list[str]) -> None:
    import resource

    limits = [
        (resource.RLIMIT_AS, config["memory_bytes"], config["memory_bytes"]),
        # Soft limit sends SIGXCPU, hard limit SIGKILL (PID 1 of a namespace ignores SIGXCPU).
        (resource.RLIMIT_CPU, config["cpu_seconds"], config["cpu_seconds"] + 1),
        (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT),
        (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT, OPEN_FILES_LIMIT),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))
    layers.append("rlimits")


def _drop_privileges(libc, layers: list[str]) -> None:
    import ctypes

    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails past the last capability, or when unprivileged
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers.append("no-new-privs")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (Data * 2)()
    libc.capset(ctypes.byref(header), data)
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh if ":" in line)
    # The bounding set only drops with privilege; no-new-privs already stops exec from refilling.
    if int(status.get("CapEff", "1").strip(), 16) == 0 and int(status.get("CapPrm", "1").strip(), 16) == 0:
        layers.append("no-capabilities")


def _seccomp(libc, layers: list[str], *, allow_fork: bool) -> None:
    import ctypes
    import errno
    import platform

    # (audit arch, socket, connect, ptrace, process_vm_writev, setsid, setpgid, clone, fork, vfork);
    # io_uring_setup is 425 and clone3 435 on both; aarch64 has no fork/vfork (-1: never matches).
    numbers = {"x86_64": (0xC000003E, 41, 42, 101, 311, 112, 109, 56, 57, 58),
               "aarch64": (0xC00000B7, 198, 203, 117, 271, 157, 154, 220, -1, -1)}
    machine = platform.machine()
    if machine not in numbers:
        return
    (arch, nr_socket, nr_connect, nr_ptrace, nr_vm_write, nr_setsid, nr_setpgid,
     nr_clone, nr_fork, nr_vfork) = numbers[machine]
    # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_JMP|JSET|K, BPF_RET|K
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EACCES  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    nosys = 0x00050000 | errno.ENOSYS
    af_inet, af_inet6, af_packet = 2, 10, 17
    clone_thread = 0x00010000
    # (label, code, jump-if-true label, jump-if-false label, k); labels resolve to offsets below.
    program = [
        (None, ld, None, None, 4),  # seccomp_data.arch
        (None, jeq, None, "deny", arch),  # a foreign ABI (int 0x80) would have other numbers
        (None, ld, None, None, 0),  # seccomp_data.nr
        (None, jge, "deny", None, 0x40000000),  # x32 ABI
        (None, jeq, "deny", None, nr_connect),
        (None, jeq, "deny", None, nr_ptrace),
        (None, jeq, "deny", None, nr_vm_write),
        (None, jeq, "deny", None, 425),
        # Leaving the process group would escape the kill at the deadline (without a PID namespace).
        (None, jeq, "deny", None, nr_setsid),
        (None, jeq, "deny", None, nr_setpgid),
    ]
    if not allow_fork:
        # One process: threads (clone with CLONE_THREAD) share its address-space limit; new
        # processes are refused, so memory, CPU and process count hold for the whole tree.
        # clone3 hides its flags in memory a filter cannot read: ENOSYS makes glibc use clone.
        program += [
            (None, jeq, "nosys", None, 435),
            (None, jeq, "deny", None, nr_fork & 0xFFFFFFFF),
            (None, jeq, "deny", None, nr_vfork & 0xFFFFFFFF),
            (None, jeq, None, "not-clone", nr_clone),
            (None, ld, None, None, 16),  # seccomp_data.args[0], low word: the clone flags
            (None, jset, "allow", "deny", clone_thread),
            ("not-clone", ld, None, None, 0),
        ]
    program += [
        (None, jeq, None, "allow", nr_socket),
        (None, ld, None, None, 16),  # seccomp_data.args[0], low word: the address family
        (None, jeq, "deny", None, af_inet),
        (None, jeq, "deny", None, af_inet6),
        (None, jeq, "deny", None, af_packet),
        ("allow", ret, None, None, allow),
        ("deny", ret, None, None, deny),
        ("nosys", ret, None, None, nosys),
    ]
    labels = {entry[0]: i for i, entry in enumerate(program) if entry[0]}

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    filters = (SockFilter * len(program))()
    for i, (_, code, true_label, false_label, k) in enumerate(program):
        jt = labels[true_label] - i - 1 if true_label else 0
        jf = labels[false_label] - i - 1 if false_label else 0
        filters[i] = SockFilter(code, jt, jf, k)
    fprog = SockFprog(len(program), filters)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return
    if libc.prctl(PR_SET_SECCOMP, 2, ctypes.addressof(fprog), 0, 0) == 0:  # SECCOMP_MODE_FILTER
        layers.append("seccomp")
        if not allow_fork:
            layers.append("no-fork")


_BLOCKED_EVENTS = (
    "socket.bind", "socket.connect", "socket.getaddrinfo", "socket.gethostbyaddr", "socket.gethostbyname",
    "socket.getnameinfo", "socket.sendmsg", "socket.sendto", "socket.sethostname",
    "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.forkpty", "pty.spawn", "subprocess.Popen",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata",
)


def _install_audit_hook(layers: list[str]) -> None:
    write = os.write
    blocked = _BLOCKED_EVENTS

    def refuse(event: str, args: tuple) -> None:
        if event.startswith(blocked):
            # Straight to fd 2: the refusal must show even if the code swallows the exception.
            write(2, f"\n{BLOCKED_MARKER}{event}\n".encode())
            raise PermissionError(f"sandbox: {event} is not allowed here")

    sys.addaudithook(refuse)
    layers.append("audit-hook")


def _run_user_code(paths: Sequence[str], report_fd: int) -> None:
    import builtins
    import traceback
    import types

    main = types.ModuleType("__main__")
    main.__file__ = paths[0]
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [os.path.basename(paths[0])]
    sources = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            sources.append((os.path.basename(path), fh.read()))
    try:
        for name, source in sources:
            exec(compile(source, name, "exec"), main.__dict__)  # noqa: S102 - running it is the point
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - print it the way the interpreter would
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(1)
    os.write(report_fd, _DONE)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _reap_everything(worker: int) -> None:
    """Kill and reap every descendant that outlived the worker. We are their subreaper, so even
    ones that left the worker's group come back to us as children instead of becoming zombies
    under an init that may never reap them."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            os.killpg(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return  # nobody left
        for child in _children(os.getpid()):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _supervise(worker: int, report_fd: int, wall_s: float) -> None:
    """The process run_python started: wait for the worker, clean up after it, exit as it did.
    At the deadline (its own timer, or SIGUSR1 from the caller) it kills the worker's group and
    says so on the report pipe."""
    fired = []

    def stop(signum: int, frame: object) -> None:
        fired.append(signum)
        for kill in (os.killpg, os.kill):
            try:
                kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGUSR1, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, wall_s)
    while True:
        try:
            _, status = os.waitpid(worker, 0)
            break
        except InterruptedError:
            continue
    signal.setitimer(signal.ITIMER_REAL, 0)
    _reap_everything(worker)
    if fired:
        os.write(report_fd, _TIMEOUT)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _inside_bwrap(libc, config: dict, layers: list[str]) -> None:
    """Under bubblewrap: mount the size-limited work dir, and as root leave root for good."""
    layers[:] = ["process", "clean-env", "bwrap", "minimal-fs", "mount-namespace", "pid-namespace",
                 "private-proc", "net-namespace", "ipc-uts-namespaces"]
    if os.path.exists("/proc/self/uid_map") and open("/proc/self/uid_map").read().split()[:3] != ["0", "0", "4294967295"]:
        layers.append("user-namespace")
    work = config["workdir"]
    options = f"size={config['disk_bytes']},nr_inodes=4096,mode=0700"
    # In a user namespace bwrap's mount namespace belongs to the namespace above ours, where our
    # CAP_SYS_ADMIN counts for nothing: a mount namespace of our own first.
    if _mount(libc, "tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, options) or (
            libc.unshare(CLONE_NEWNS) == 0 and _mount(libc, "tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, options)):
        layers.append("disk-tmpfs")
    if config.get("root") and os.geteuid() == 0:
        os.chown(work, _NOBODY, _NOBODY)
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)  # clears every capability as it leaves uid 0
        if os.getuid() == os.geteuid() == _NOBODY:
            layers.append("unprivileged-uid")
    os.chdir(work)
    layers.append("temp-dir")


_NOBODY = 65534


def _boot(config_json: str) -> None:
    config = json.loads(config_json)
    report_fd = config["report_fd"]
    os.set_inheritable(report_fd, False)
    disable = set(config["disable"])
    layers = ["process", "temp-dir", "clean-env"]
    libc = _libc()

    if config.get("bwrap"):
        flags = 0  # bubblewrap made the namespaces and the view already
        _inside_bwrap(libc, config, layers)
    else:
        flags = 0 if "namespaces" in disable else _unshare(libc, layers)
        if flags & CLONE_NEWNS and _readonly_filesystem(libc, config["workdir"], layers) and not flags & CLONE_NEWUSER:
            _private_dev(libc, layers)
    _set_limits(config, layers)

    # Split into a supervisor (this process) and a worker that runs the code in its own process
    # group. The supervisor outlives the worker to kill and reap whatever the code left behind;
    # after unshare(CLONE_NEWPID) the worker is also PID 1 of the new namespace.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    worker = os.fork()
    if worker:
        try:
            os.setpgid(worker, worker)  # also done by the worker: whichever runs first wins the race
        except OSError:
            pass
        _supervise(worker, report_fd, config["wall_s"])
    os.setpgid(0, 0)
    # If the supervisor is killed outright, the worker (and with it a PID namespace) goes too.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if flags & CLONE_NEWPID and flags & CLONE_NEWNS and \
            _mount(libc, "proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
        layers.append("private-proc")

    _drop_privileges(libc, layers)
    if "seccomp" not in disable:
        _seccomp(libc, layers, allow_fork=config.get("allow_fork", True))
    if "audit-hook" not in disable:
        _install_audit_hook(layers)
    os.write(report_fd, json.dumps({"layers": layers}).encode() + b"\n")
    del libc
    _run_user_code(config["parts"], report_fd)


if __name__ == "__main__":
    _boot(sys.argv[1])

"""Sandbox worker: a long-lived process that runs one program at a time, each in a fresh child.

The Executor starts one worker per core with a scrubbed environment and speaks to it with
length-prefixed JSON frames on stdin/stdout. This file is run as a plain script and imports only
the standard library (and `_harness.py` beside it, by path): the supervisor's memory (config, API
keys, the expected values of tests) is never in this process, so a child forked from it cannot
read any of it.

Layers, each recorded in the `isolation` report sent with the ready frame:
- worker-wide namespaces (net, mount with private tmpfs on /tmp, /var/tmp, /dev/shm; ipc; uts),
  made once at start and shared by all of this worker's programs;
- per program: a new PID namespace (raw clone), so killing the child kills every process the
  program made, setsid/double-fork escapes included; a fresh temporary directory; rlimits; an
  unprivileged uid of this worker slot's own (root ignores RLIMIT_NPROC, and a uid per slot keeps
  one program's fork bomb from eating another slot's process budget); no_new_privs; stdin from
  /dev/null; stdout+stderr captured to a capped pipe; a wall-clock deadline after which the whole
  namespace is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time

FRAME_HEADER = struct.Struct("!I")
RESULT_FD = 3
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
# per-mount flags to keep on a read-only remount (in a user namespace they are locked anyway)
KEPT_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                    "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME,
                    "strictatime": MS_STRICTATIME}  # fmt: skip
KERNEL_TREES = ("/proc", "/sys", "/dev")
MNT_DETACH = 2
# Imported once here so every forked program has them for free (these are what generated code
# imports most); a program may still import anything else the interpreter can reach.
PRELOAD = ("math", "itertools", "functools", "collections", "heapq", "bisect", "re", "string",
           "typing", "dataclasses", "fractions", "decimal", "statistics", "operator", "copy",
           "hashlib", "datetime", "random", "unittest", "socket", "threading", "subprocess")  # fmt: skip
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SYS_CLONE = {"x86_64": 56, "aarch64": 220}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PRIVATE_TMP_MOUNTS = (("/tmp", 4), ("/var/tmp", 1), ("/dev/shm", 1))  # share of tmpfs_mb each

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


# ---------------------------------------------------------------- frames to and from the supervisor
def read_frame(fd: int) -> dict | None:
    header = _read_exact(fd, FRAME_HEADER.size)
    if header is None:
        return None
    (length,) = FRAME_HEADER.unpack(header)
    body = _read_exact(fd, length)
    return None if body is None else json.loads(body)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, obj: dict) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    data = FRAME_HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


# ---------------------------------------------------------------- worker-wide isolation
def _write_proc(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_user_namespace() -> None:
    """Non-root: become root of a new user namespace so the other namespaces can be made."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    _write_proc("/proc/self/setgroups", "deny")
    _write_proc("/proc/self/uid_map", f"0 {uid} 1")
    _write_proc("/proc/self/gid_map", f"0 {gid} 1")


def _mount_private_tmp(tmpfs_mb: int) -> list[str]:
    """Fresh tmpfs over /tmp, /var/tmp, /dev/shm; returns the directories kept visible in them."""
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _remount_readonly()
    kept: list[str] = []
    for path, share in PRIVATE_TMP_MOUNTS:
        if not os.path.isdir(path):
            continue
        # handles taken before the tmpfs hides them: the interpreter may live in /tmp/x/.venv
        handles = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in _interpreter_dirs_in(path)}
        size = max(8, tmpfs_mb * share // 4)
        opts = f"size={size}m,mode=1777".encode()
        flags = MS_NOSUID | MS_NODEV
        _check(
            _libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, opts), f"mount tmpfs on {path}"
        )
        for kept_dir, handle in handles.items():
            _bind_back(handle, kept_dir)
            kept.append(kept_dir)
    return kept


def _bind_back(handle: int, directory: str) -> None:
    """Mount what `handle` points at (now hidden) at `directory` again, read-only."""
    os.makedirs(directory, exist_ok=True)
    source = f"/proc/self/fd/{handle}".encode()
    _check(_libc.mount(source, directory.encode(), None, MS_BIND | MS_REC, None), "keep dir")
    read_only = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    _check(_libc.mount(None, directory.encode(), None, read_only, None), "keep dir read-only")
    os.close(handle)


def _interpreter_dirs_in(tmp_dir: str) -> set[str]:
    """Top directories under `tmp_dir` that hold the interpreter, its packages or this harness."""
    prefix = tmp_dir.rstrip("/") + "/"
    return {
        prefix + path[len(prefix) :].split("/")[0]
        for path in _interpreter_paths()
        if path.startswith(prefix)
    }


def _interpreter_paths() -> set[str]:
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.add(os.path.dirname(os.path.abspath(__file__)))
    paths |= {p for p in sys.path if p and os.path.isdir(p)}
    return {os.path.realpath(p) for p in paths}


def _first_closed_dir(path: str) -> str | None:
    """The first directory on the way to `path` that other users cannot enter."""
    current = "/"
    for part in path.strip("/").split("/"):
        if not os.stat(current).st_mode & 0o001:
            return current
        current = os.path.join(current, part)
    return None


def _expose_interpreter(notes: list) -> None:
    """The program's uid must read the interpreter and its libraries, which may live under a
    directory it cannot enter (pyenv in /root, mode 700). Over each such directory goes a
    read-only tmpfs holding bind mounts of just the needed subtrees; the rest stays hidden.
    Repeated, since the subtree bound back may hold another closed directory."""
    for level in range(8):
        wanted: dict[str, set[str]] = {}
        for path in _interpreter_paths():
            closed = _first_closed_dir(path)
            if closed is not None:
                child = path[len(closed.rstrip("/")) + 1 :].split("/")[0]
                wanted.setdefault(closed, set()).add(child)
        if not wanted:
            return
        for i, (closed, children) in enumerate(sorted(wanted.items())):
            try:
                _mask_directory(closed, sorted(children), f"/tmp/.iterkd-expose-{level}-{i}")
            except OSError as exc:
                notes.append(f"interpreter under {closed} not reachable by programs: {exc}")
                return


def _mask_directory(closed: str, children: list[str], stage: str) -> None:
    for child in children:
        os.makedirs(os.path.join(stage, child))
        src, dst = os.path.join(closed, child).encode(), os.path.join(stage, child).encode()
        _check(_libc.mount(src, dst, None, MS_BIND | MS_REC, None), f"bind {src!r}")
    opts = b"size=1m,mode=755"
    _check(_libc.mount(b"tmpfs", closed.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts), "mask")
    for child in children:
        target, staged = os.path.join(closed, child), os.path.join(stage, child)
        os.mkdir(target)
        _check(_libc.mount(staged.encode(), target.encode(), None, MS_BIND | MS_REC, None), "bind")
        _libc.umount2(staged.encode(), MNT_DETACH)
        os.rmdir(staged)
    os.rmdir(stage)
    flags = MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    _check(_libc.mount(None, closed.encode(), None, flags, None), "read-only mask")


def _remount_readonly() -> None:
    """Every mount of this worker's namespace read-only (the host's stay as they are): a program's
    uid may own or be allowed to write somewhere (a world-writable dir); here it cannot."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        point = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        if point.startswith(KERNEL_TREES):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(KEPT_MOUNT_FLAGS.get(opt, 0) for opt in fields[5].split(","))
        _libc.mount(None, point.encode(), None, flags, None)  # best effort per mount


def setup_isolation(opts: dict) -> dict:
    """Apply what can be applied; say plainly what could not, and why."""
    iso = {
        "uid_drop": False,
        "net_namespace": False,
        "mount_namespace": False,
        "pid_namespace": False,
        "rlimits": bool(opts["rlimits"]),
        "bubblewrap": bool(opts["bubblewrap"]),
        "kept_tmp_dirs": [],
        "kill_scope": "process_group",
        "notes": [],
    }
    notes = iso["notes"]
    is_root = os.geteuid() == 0
    if not is_root and (opts["net_namespace"] or opts["mount_namespace"] or opts["pid_namespace"]):
        try:
            _enter_user_namespace()
        except OSError as exc:
            notes.append(f"no user namespace ({exc}); namespaces not applied")
    flags = 0
    if opts["net_namespace"]:
        flags |= CLONE_NEWNET
    if opts["mount_namespace"]:
        flags |= CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if flags:
        try:
            _check(_libc.unshare(flags), "unshare")
            iso["net_namespace"] = bool(flags & CLONE_NEWNET)
            if flags & CLONE_NEWNS:
                iso["kept_tmp_dirs"] = _mount_private_tmp(opts["tmpfs_mb"])
                iso["mount_namespace"] = True
                if opts["drop_privileges"] and is_root:
                    _expose_interpreter(notes)
        except OSError as exc:
            notes.append(f"namespaces not applied: {exc}")
    if opts["bubblewrap"]:
        iso["net_namespace"] = True  # bwrap was started with --unshare-net
    elif not iso["net_namespace"]:
        notes.append("NETWORK IS NOT ISOLATED: programs can reach the network")
    iso["pid_namespace"] = opts["pid_namespace"] and _can_clone_newpid(notes)
    if opts["drop_privileges"]:
        if is_root:
            iso["uid_drop"] = True
        else:
            notes.append(
                "not root: programs keep the invoking uid (RLIMIT_NPROC is shared with it)"
            )
    if iso["pid_namespace"]:
        iso["kill_scope"] = "pid_namespace"
    elif iso["uid_drop"]:
        iso["kill_scope"] = "uid"
    return iso


def _can_clone_newpid(notes: list) -> bool:
    if platform.machine() not in SYS_CLONE:
        notes.append(f"no per-program PID namespace on {platform.machine()}")
        return False
    pid = _clone_newpid()
    if pid == -1:
        notes.append(f"no per-program PID namespace: {os.strerror(ctypes.get_errno())}")
        return False
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return True


def _clone_newpid() -> int:
    """fork() into a new PID namespace: the child is its init, so killing it kills all it made.

    unshare(CLONE_NEWPID) works once per process, so a per-program namespace needs clone itself;
    this worker is single-threaded, which is what makes a raw clone (no atfork handlers) safe.
    """
    return _libc.syscall(SYS_CLONE[platform.machine()], signal.SIGCHLD | CLONE_NEWPID, 0, 0, 0, 0)


# ---------------------------------------------------------------- one program
class Slot:
    """What stays the same for every program this worker runs."""

    def __init__(self, opts: dict, iso: dict, harness) -> None:
        self.opts = opts
        self.iso = iso
        self.harness = harness
        self.uid = opts["uid"] if iso["uid_drop"] else None
        self.sandbox_root = tempfile.mkdtemp(prefix="iterkd-sandbox-")
        os.chmod(self.sandbox_root, 0o711)


def run_program(slot: Slot, job: dict) -> dict:
    sandbox = tempfile.mkdtemp(dir=slot.sandbox_root)
    if slot.uid is not None:
        os.chown(sandbox, slot.uid, slot.uid)
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    status_r, status_w = os.pipe()
    started = time.monotonic()
    in_namespace = slot.iso["pid_namespace"]
    pid = _clone_newpid() if in_namespace else os.fork()
    if pid == 0:
        try:
            if in_namespace:
                _namespace_init(slot, job, sandbox, (res_w, out_w, status_w))
            else:
                _program(slot, job, sandbox, res_w, out_w)
        finally:
            os._exit(121)
    _check(pid, "clone")
    for fd in (res_w, out_w, status_w):
        os.close(fd)
    try:
        outcome = _supervise(slot, job, pid, (res_r, out_r, status_r), started)
    finally:
        for fd in (res_r, out_r, status_r):
            os.close(fd)
        _cleanup(slot, sandbox)
    return outcome


def _supervise(slot: Slot, job: dict, pid: int, fds: tuple, started: float) -> dict:
    res_r, out_r, status_r = fds
    lim = job["limits"]
    deadline = started + lim["timeout_s"]
    watch = _Watch(res_r, out_r, lim, slot.uid)
    reason = watch.until_exit(pid, deadline)
    cpu_at_kill = _tree_cpu_seconds(pid) if reason is not None else 0.0
    if reason is not None or slot.iso["kill_scope"] != "pid_namespace":
        _kill_everything(slot, pid)
    _, status, usage = os.wait4(pid, 0)  # with a namespace: its init, which reaped the program
    wall = time.monotonic() - started
    _reap_orphans()
    watch.drain(deadline=time.monotonic() + 1.0)
    if slot.iso["pid_namespace"]:
        status = _program_status(status_r)
    return {
        "kill_reason": reason or watch.reason,
        "exit_code": os.WEXITSTATUS(status)
        if status is not None and os.WIFEXITED(status)
        else None,
        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "wall_s": round(wall, 6),
        "cpu_s": round(max(usage.ru_utime + usage.ru_stime, cpu_at_kill), 6),
        "peak_rss_kb": usage.ru_maxrss,
        "results": watch.results.decode("utf-8", "replace"),
        "output": watch.output_head.decode("utf-8", "replace"),
        "output_bytes": watch.output_total,
    }


def _reap_orphans(timeout_s: float = 2.0) -> None:
    """Without a PID namespace, escaped processes are reparented to us (a subreaper) once the kill
    sweep ends their parents: wait for and reap them all, so none is left even as a zombie."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left at all
        if pid == 0:
            time.sleep(0.001)  # killed, not yet dead


def _program_status(status_r: int) -> int | None:
    """The program's wait status as its init reported it; None if init was killed first."""
    os.set_blocking(status_r, False)
    try:
        data = os.read(status_r, 4)
    except BlockingIOError:
        return None
    return int.from_bytes(data, "big") if len(data) == 4 else None


class _Watch:
    """Reads the result and output pipes of one program until it exits or breaks a limit."""

    def __init__(self, res_r: int, out_r: int, lim: dict, uid: int | None) -> None:
        self.lim = lim
        self.uid = uid
        self.results = b""
        self.output_head = b""
        self.output_total = 0
        self.reason: str | None = None
        self.sel = selectors.DefaultSelector()
        for fd in (res_r, out_r):
            os.set_blocking(fd, False)
        self.sel.register(res_r, selectors.EVENT_READ, "results")
        self.sel.register(out_r, selectors.EVENT_READ, "output")

    def until_exit(self, pid: int, deadline: float) -> str | None:
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None  # old kernel: poll waitpid instead
        if pidfd is not None:
            self.sel.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            return self._loop(pid, pidfd, deadline)
        finally:
            if pidfd is not None:
                self.sel.unregister(pidfd)
                os.close(pidfd)

    def _loop(self, pid: int, pidfd: int | None, deadline: float) -> str | None:
        renice_at: float | None = deadline - self.lim["timeout_s"] + self.lim["straggler_after_s"]
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if renice_at is not None and now >= renice_at:
                self._renice(pid)
                renice_at = None
            wait = min(deadline, renice_at or deadline) - now
            for key, _ in self.sel.select(min(wait, 0.05) if pidfd is None else wait):
                if key.data == "exit":
                    return None
                self._read(key)
                if self.reason:
                    return self.reason
            if pidfd is None and os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return None

    def _renice(self, pid: int) -> None:
        """A straggler: from now on it runs only on CPU nobody else wants (SCHED_IDLE; a waking
        normal task preempts it at once), so a looping program no longer slows fresh ones."""
        if not self.lim["straggler_idle"]:
            return
        for member in _process_tree(pid):  # children forked later inherit the policy
            with contextlib.suppress(OSError):
                os.sched_setscheduler(member, os.SCHED_IDLE, os.sched_param(0))

    def _read(self, key: selectors.SelectorKey) -> bool:
        try:
            chunk = os.read(key.fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            self.sel.unregister(key.fd)
            return False
        if key.data == "results":
            self.results += chunk
            if len(self.results) > self.lim["max_result_bytes"]:
                self.reason = "result_limit"
        else:
            room = self.lim["output_keep_bytes"] - len(self.output_head)
            if room > 0:
                self.output_head += chunk[:room]
            self.output_total += len(chunk)
            if self.output_total > self.lim["output_limit_bytes"]:
                self.reason = "output_limit"
        return True

    def drain(self, deadline: float) -> None:
        """Everything the program wrote is in the pipes once all its processes are dead."""
        while self.sel.get_map() and not self.reason:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in self.sel.select(left):
                self._read(key)
        self.sel.close()


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, as /proc shows them now."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
    return tree


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of a program's live process tree (user+system, its reaped children included):
    read before a kill, because processes that the kernel reaps are in nobody's rusage."""
    total = 0
    for member in _process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def _kill_everything(slot: Slot, pid: int) -> None:
    """SIGKILL the program and everything it started; how far that reaches is `kill_scope`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # init of its PID namespace: the kernel kills the rest
    if slot.iso["kill_scope"] == "pid_namespace":
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if slot.uid is not None:
        _kill_uid(slot.uid)


def _kill_uid(uid: int) -> None:
    """Without a PID namespace: kill(-1) as the slot's uid reaches every process it owns."""
    reaper = os.fork()
    if reaper == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(20):  # a fork bomb may still be forking while we sweep
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    os.waitpid(reaper, 0)


def _cleanup(slot: Slot, sandbox: str) -> None:
    shutil.rmtree(sandbox, ignore_errors=True)
    if not slot.iso["mount_namespace"]:
        return
    for path, _ in PRIVATE_TMP_MOUNTS:  # private tmpfs of this worker: whatever is there is litter
        with contextlib.suppress(OSError):
            for entry in os.scandir(path):
                if entry.path == slot.sandbox_root or entry.path in slot.iso["kept_tmp_dirs"]:
                    continue  # never the interpreter's own directories (read-only anyway)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


# ---------------------------------------------------------------- inside the namespace
def _namespace_init(slot: Slot, job: dict, sandbox: str, fds: tuple) -> None:
    """PID 1 of the program's namespace (trusted, still root), with the program as its child.

    The kernel drops signals with default action sent to an init (SIGXFSZ, a program's own
    killpg, SIGTERM...), so the program must not be init: as init's child it keeps ordinary
    Unix semantics. When init exits, the kernel kills whatever the program left behind.
    """
    res_w, out_w, status_w = fds
    child = _libc.syscall(SYS_CLONE[platform.machine()], signal.SIGCHLD, 0, 0, 0, 0)  # fork
    if child == 0:
        os.close(status_w)  # before any untrusted code: the program cannot forge its status
        _program(slot, job, sandbox, res_w, out_w)
    os.close(res_w)
    os.close(out_w)
    _, status = os.waitpid(child, 0)
    os.write(status_w, status.to_bytes(4, "big"))
    os._exit(0)


def _program(slot: Slot, job: dict, sandbox: str, res_w: int, out_w: int) -> None:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.dup2(res_w, RESULT_FD)
    os.closerange(RESULT_FD + 1, 65536)
    os.chdir(sandbox)
    if slot.opts["rlimits"]:
        _set_rlimits(job["limits"])
    if slot.uid is not None:
        if job["kind"] == "exec":  # other interpreters reopen /dev/fd/3, which checks the owner
            os.fchown(RESULT_FD, slot.uid, slot.uid)
        os.setgroups([])
        os.setresgid(slot.uid, slot.uid, slot.uid)
        os.setresuid(slot.uid, slot.uid, slot.uid)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a huge file must end the run
    os.environ["HOME"] = os.environ["TMPDIR"] = sandbox
    if job["kind"] == "python":
        slot.harness.run_python_job(job, RESULT_FD)
        os._exit(0)
    argv = job["argv"]
    for name, text in job.get("files", {}).items():
        with open(os.path.join(sandbox, name), "w", encoding="utf-8") as f:
            f.write(text)
    if job.get("build"):
        _build(job["build"])
    os.execvpe(argv[0], argv, dict(os.environ))


def _build(argv: list) -> None:
    """Compile step of a compiled language, run as the program is (its uid, limits, namespace).
    A failed build is the program's load error, with the compiler's last words as its message."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(RESULT_FD)
        try:
            os.execvpe(argv[0], argv, dict(os.environ))
        finally:
            os._exit(127)
    os.close(write_end)
    output = bytearray()
    while chunk := os.read(read_end, 65536):
        output += chunk[: max(0, (1 << 20) - len(output))]
    _, status = os.waitpid(pid, 0)
    if status == 0:
        return
    text = output.decode("utf-8", "replace").strip()[-1000:] or f"{argv[0]} failed ({status})"
    records = [
        {"event": "load_start"},
        {"event": "load_error", "type": "CompileError", "msg": text},
    ]
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    while data:
        data = data[os.write(RESULT_FD, data) :]
    os._exit(1)


def _set_rlimits(lim: dict) -> None:
    mb = 1024 * 1024
    cpu = max(1, int(lim["cpu_time_s"] + 0.999))
    pairs = {
        resource.RLIMIT_AS: lim["memory_mb"] * mb,
        resource.RLIMIT_CPU: cpu,
        resource.RLIMIT_FSIZE: lim["file_size_mb"] * mb,
        resource.RLIMIT_NOFILE: lim["open_files"],
        resource.RLIMIT_NPROC: lim["max_processes"],
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        hard = value + 1 if which == resource.RLIMIT_CPU else value  # SIGXCPU first, then SIGKILL
        resource.setrlimit(which, (value, hard))


# ---------------------------------------------------------------- main loop
def _load_harness():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_harness.py")
    spec = importlib.util.spec_from_file_location("iterkd_sandbox_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    sys.path.pop(0)  # this package's directory: programs must not import the supervisor's code
    ctrl_in, ctrl_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a stray print in this process must not corrupt the frame stream
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the supervisor died: so do we
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of programs come to us
    init = read_frame(ctrl_in)
    if init is None:
        return
    for name in PRELOAD:
        importlib.import_module(name)
    harness = _load_harness()  # before the private /tmp, which may hide this very file
    slot = Slot(init["options"], setup_isolation(init["options"]), harness)
    write_frame(ctrl_out, {"ready": True, "pid": os.getpid(), "isolation": slot.iso})
    while (job := read_frame(ctrl_in)) is not None:
        outcome = run_program(slot, job)
        outcome["id"] = job["id"]
        write_frame(ctrl_out, outcome)
        del job, outcome


if __name__ == "__main__":
    main()

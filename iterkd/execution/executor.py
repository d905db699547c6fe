"""The supervisor: a pool of sandbox workers (one per core) and the loop that feeds them.

    with Executor(SandboxConfig(timeout_s=5)) as executor:
        verdicts = executor.run(programs)          # same order as `programs`

Workers are separate processes started with a scrubbed environment (`_worker.py`); each runs one
program at a time in a fresh child and answers with a raw report; verdicts are built here, where
the expected values of the tests are. A worker that dies or stops answering costs only its current
program (a `crashed` verdict) and is replaced; workers are recycled every `recycle_after` programs.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iterkd.execution.config import SandboxConfig
from iterkd.execution.models import Program, ProgramVerdict, Status
from iterkd.execution.runners import RUNNERS, InvalidProgram, PreparedJob
from iterkd.execution.verdicts import invalid_verdict

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
FRAME_HEADER_BYTES = 4
MAX_START_FAILURES = 3
# Only these reach a program: no tokens or keys of the parent, no PYTHON* that changes semantics.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
BWRAP_ARGS = [
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-ipc",
    "--unshare-uts", "--unshare-pid", "--die-with-parent", "--new-session",
]  # fmt: skip


class SandboxError(RuntimeError):
    """The sandbox itself cannot work here (not a program's fault)."""


@dataclass
class _Worker:
    slot: int
    proc: subprocess.Popen
    log_path: Path
    state: str = "starting"  # starting -> idle <-> busy
    buffer: bytes = b""
    isolation: dict[str, Any] | None = None
    job_index: int | None = None
    started_at: float = 0.0
    deadline: float = 0.0
    programs_run: int = 0


class Executor:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.n_workers = min(self.config.workers or os.cpu_count() or 1, 64)
        extra = self.config.max_stragglers
        self.max_slots = self.n_workers + (2 * self.n_workers if extra is None else extra)
        self._bwrap = self._find_bwrap()
        self._bwrap_note: str | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="iterkd-executor-"))
        self._selector = selectors.DefaultSelector()
        self._workers: dict[int, _Worker] = {}
        self._start_failures = 0
        self.stats = {"workers_started": 0, "workers_replaced": 0, "programs_run": 0}
        # a uid range of this process's own, so two executors on one host never share a uid
        self._uid_base = self.config.sandbox_uid_base + (os.getpid() % 20000) * 256

    # ------------------------------------------------------------ public
    @property
    def sandbox_uids(self) -> range:
        """The uids programs of this executor run as (when privileges are dropped)."""
        return range(self._uid_base, self._uid_base + self.max_slots)

    def run(
        self,
        programs: Iterable[Program],
        on_verdict: Callable[[int, ProgramVerdict], None] | None = None,
    ) -> list[ProgramVerdict]:
        programs = list(programs)
        verdicts: list[ProgramVerdict | None] = [None] * len(programs)
        pending: deque[tuple[int, PreparedJob]] = deque()
        for index, program in enumerate(programs):
            prepared = self._prepare(program)
            if isinstance(prepared, ProgramVerdict):
                self._finish(verdicts, index, prepared, on_verdict)
            else:
                pending.append((index, prepared))
        jobs = dict(pending)
        self._fill_pool(len(pending))
        while pending or self._busy():
            self._dispatch(pending)
            for index, raw, worker in self._wait_for_results():
                verdict = self._interpret(programs[index], jobs.pop(index), raw, worker)
                self._finish(verdicts, index, verdict, on_verdict)
        return verdicts  # type: ignore[return-value]

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (or of their bwrap wrappers)."""
        return [w.proc.pid for w in self._workers.values()]

    def close(self) -> None:
        for worker in list(self._workers.values()):
            self._retire(worker)
        self._selector.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ preparing and finishing
    def _prepare(self, program: Program) -> PreparedJob | ProgramVerdict:
        runner = RUNNERS.get(program.language)
        if runner is None:
            known = ", ".join(sorted(RUNNERS))
            message = f"no runner for language {program.language!r} (known: {known})"
            return invalid_verdict(program.id, message, program.language)
        try:
            return runner.prepare(program, self.config)
        except InvalidProgram as exc:
            return invalid_verdict(program.id, str(exc), program.language)

    def _interpret(
        self, program: Program, job: PreparedJob, raw: dict[str, Any], worker: _Worker
    ) -> ProgramVerdict:
        isolation = dict(worker.isolation or {})
        if self._bwrap_note:
            isolation["notes"] = [*isolation.get("notes", []), self._bwrap_note]
        if raw.get("worker_failure"):
            return ProgramVerdict(
                program_id=program.id,
                status=Status.CRASHED,
                message=raw["worker_failure"],
                language=program.language,
                isolation=isolation,
            )
        verdict = RUNNERS[program.language].interpret(program, job, raw, isolation)
        verdict.language = program.language
        return verdict

    @staticmethod
    def _finish(
        verdicts: list, index: int, verdict: ProgramVerdict, on_verdict: Callable | None
    ) -> None:
        verdicts[index] = verdict
        if on_verdict is not None:
            on_verdict(index, verdict)

    # ------------------------------------------------------------ the pool
    def _find_bwrap(self) -> str | None:
        mode = self.config.bubblewrap
        path = shutil.which("bwrap") if mode != "off" else None
        if mode == "on" and path is None:
            raise SandboxError("bubblewrap='on' but `bwrap` is not installed (Debian: bubblewrap)")
        return path

    def _fill_pool(self, n_jobs: int) -> None:
        used = {w.slot for w in self._workers.values()}
        free = [s for s in range(self.n_workers) if s not in used]
        for slot in free[: max(0, min(n_jobs, self.n_workers) - len(used))]:
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        env = dict(BASE_ENV, PYTHONHASHSEED=str(self.config.seed), **self.config.extra_env)
        command = [self.config.python or sys.executable, "-s", str(WORKER_SCRIPT)]
        if self._bwrap:
            caps = ["--cap-add", "ALL"] if os.geteuid() == 0 else []
            tmp = [] if self.config.mount_namespace else self._bwrap_tmpfs_args()
            command = [self._bwrap, *BWRAP_ARGS, *tmp, *caps, "--", *command]
        log_path = self._tmp / f"worker-{slot}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=env, cwd="/", close_fds=True,
            )  # fmt: skip
        worker = _Worker(slot=slot, proc=proc, log_path=log_path)
        self.stats["workers_started"] += 1
        os.set_blocking(proc.stdout.fileno(), False)
        self._selector.register(proc.stdout, selectors.EVENT_READ, worker)
        self._workers[slot] = worker
        self._send(worker, {"options": self._worker_options(slot)})
        worker.deadline = time.monotonic() + 60.0

    def _bwrap_tmpfs_args(self) -> list[str]:
        """Without the worker's own mount namespace, bwrap gives the writable /tmp; directories of
        the interpreter (a checkout or venv in /tmp, PYTHONPATH) are bound back read-only."""
        paths = {sys.prefix, sys.base_prefix, str(WORKER_SCRIPT.parent), *filter(None, sys.path)}
        paths |= set(filter(None, self.config.extra_env.get("PYTHONPATH", "").split(":")))
        keep = set()
        for path in map(os.path.realpath, paths):
            for tmp in ("/tmp/", "/var/tmp/"):
                if path.startswith(tmp):
                    keep.add(tmp + path[len(tmp) :].split("/")[0])
        binds = [arg for kept in sorted(keep) for arg in ("--ro-bind", kept, kept)]
        return ["--tmpfs", "/tmp", "--tmpfs", "/var/tmp", *binds]

    def _worker_options(self, slot: int) -> dict[str, Any]:
        cfg = self.config
        return {
            "uid": self._uid_base + slot,
            "drop_privileges": cfg.drop_privileges,
            "pid_namespace": cfg.pid_namespace,
            "net_namespace": cfg.net_namespace,
            "mount_namespace": cfg.mount_namespace,
            "rlimits": cfg.rlimits,
            "tmpfs_mb": cfg.tmpfs_mb,
            "bubblewrap": self._bwrap is not None,
        }

    def _limits(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "timeout_s": cfg.timeout_s,
            "cpu_time_s": cfg.effective_cpu_time_s(),
            "memory_mb": cfg.memory_mb,
            "file_size_mb": cfg.file_size_mb,
            "open_files": cfg.open_files,
            "max_processes": cfg.max_processes,
            "output_limit_bytes": cfg.output_limit_bytes,
            "output_keep_bytes": cfg.output_keep_bytes,
            "max_result_bytes": cfg.max_result_bytes,
            "straggler_after_s": cfg.straggler_after_s,
            "straggler_idle": cfg.straggler_idle,
        }

    def _busy(self) -> bool:
        return any(w.state == "busy" for w in self._workers.values())

    def _active(self, now: float) -> int:
        """Busy workers whose program is not (yet) a straggler."""
        cutoff = now - self.config.straggler_after_s
        return sum(w.state == "busy" and w.started_at > cutoff for w in self._workers.values())

    def _dispatch(self, pending: deque[tuple[int, PreparedJob]]) -> None:
        now = time.monotonic()
        active = self._active(now)
        for worker in list(self._workers.values()):
            if not pending or active >= self.n_workers:
                break
            if worker.state != "idle":
                continue
            index, job = pending.popleft()
            worker.state, worker.job_index, worker.started_at = "busy", index, now
            worker.deadline = now + self.config.timeout_s + self.config.watchdog_grace_s
            active += 1
            try:
                self._send(worker, {"id": index, "limits": self._limits(), **job.payload})
            except OSError:  # died while idle: give the job back, replace the worker
                pending.appendleft((index, job))
                worker.state, worker.job_index = "dead", None
                self._replace(worker)
        starting = sum(w.state == "starting" for w in self._workers.values())
        if pending and active + starting < self.n_workers and len(self._workers) < self.max_slots:
            self._spawn(min(set(range(self.max_slots)) - set(self._workers)))  # beside a straggler

    def _send(self, worker: _Worker, obj: dict[str, Any]) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8", "surrogatepass")
        worker.proc.stdin.write(len(body).to_bytes(FRAME_HEADER_BYTES, "big") + body)
        worker.proc.stdin.flush()

    def _wait_for_results(self) -> list[tuple[int, dict[str, Any], _Worker]]:
        now = time.monotonic()
        wake = [w.deadline for w in self._workers.values() if w.state in ("busy", "starting")]
        wake += [
            w.started_at + self.config.straggler_after_s
            for w in self._workers.values()
            if w.state == "busy" and w.started_at + self.config.straggler_after_s > now
        ]  # a program turning straggler frees a slot: dispatch then
        timeout = min(wake, default=now + 1.0) - now
        done = []
        for key, _ in self._selector.select(max(0.0, timeout)):
            done += self._read(key.data)
        for worker in list(self._workers.values()):
            if worker.state in ("busy", "starting") and time.monotonic() > worker.deadline:
                done += self._fail(worker, "sandbox worker stopped answering; it was replaced")
        return done

    def _read(self, worker: _Worker) -> list[tuple[int, dict[str, Any], _Worker]]:
        try:
            chunk = os.read(worker.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            return self._fail(worker, "sandbox worker died while running this program")
        worker.buffer += chunk
        done = []
        while len(worker.buffer) >= FRAME_HEADER_BYTES:
            size = int.from_bytes(worker.buffer[:FRAME_HEADER_BYTES], "big")
            if len(worker.buffer) < FRAME_HEADER_BYTES + size:
                break
            frame = json.loads(worker.buffer[FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + size])
            worker.buffer = worker.buffer[FRAME_HEADER_BYTES + size :]
            done += self._on_frame(worker, frame)
        return done

    def _on_frame(self, worker: _Worker, frame: dict[str, Any]) -> list:
        if worker.state == "starting":
            worker.isolation, worker.state = frame["isolation"], "idle"
            self._start_failures = 0
            return []
        index, worker.job_index, worker.state = worker.job_index, None, "idle"
        worker.programs_run += 1
        self.stats["programs_run"] += 1
        if worker.programs_run >= self.config.recycle_after:
            self._replace(worker)
        return [(index, frame, worker)]

    def _fail(self, worker: _Worker, message: str) -> list[tuple[int, dict[str, Any], _Worker]]:
        index, state = worker.job_index, worker.state
        if state == "starting":
            self._on_start_failure(worker)
        self._replace(worker)
        return [] if index is None else [(index, {"worker_failure": message}, worker)]

    def _on_start_failure(self, worker: _Worker) -> None:
        self._start_failures += 1
        log = (
            worker.log_path.read_text(errors="replace")[-2000:] if worker.log_path.exists() else ""
        )
        if self._bwrap and self.config.bubblewrap == "auto":
            self._bwrap = None  # could not start under bwrap here: go on without that layer
            self._bwrap_note = f"bubblewrap installed but failed to start, not used: {log[-300:]}"
            return
        if self._start_failures >= MAX_START_FAILURES:
            raise SandboxError(f"sandbox workers fail to start; last worker log:\n{log}")

    def _replace(self, worker: _Worker) -> None:
        self.stats["workers_replaced"] += 1
        self._retire(worker)
        self._spawn(worker.slot)

    def _retire(self, worker: _Worker) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.proc.stdout)
        self._workers.pop(worker.slot, None)
        with contextlib.suppress(OSError):
            worker.proc.stdin.close()
        worker.proc.kill()  # idle or broken: it has no program of ours left to finish
        worker.proc.wait()
        worker.proc.stdout.close()

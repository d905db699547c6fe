"""A baseline executor in the style of openai/human-eval's `execution.py` (written for this
benchmark, not copied): per sample a `multiprocessing.Manager` for the result list and a
`multiprocessing.Process` that execs prompt+completion+tests+`check(entry_point)` in a temp dir,
after a `reliability_guard` that disables destructive functions, under a `setitimer` time limit;
samples go through a thread pool of 4. This is the harness most code-LLM evaluations run."""

from __future__ import annotations

import builtins
import contextlib
import faulthandler
import io
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor


class TimeLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise TimeLimitExceeded("timed out")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def quiet_io():
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def reliability_guard() -> None:
    """What human-eval disables before running a sample (not a sandbox: it says so itself)."""
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
                 "fchmod", "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"):  # fmt: skip
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    if platform.uname().system != "Darwin":
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _run_sample(program: str, timeout: float, result: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir
        reliability_guard()
        try:
            with quiet_io(), time_limit(timeout):
                exec(program, {})
            result.append("passed")
        except TimeLimitExceeded:
            result.append("timed out")
        except BaseException as exc:
            result.append(f"failed: {exc!r}")
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir
        os.chdir(cwd)


def check_correctness(program: str, timeout: float) -> bool:
    with multiprocessing.Manager() as manager:
        result = manager.list()
        process = multiprocessing.Process(target=_run_sample, args=(program, timeout, result))
        process.start()
        process.join(timeout=timeout + 1)
        if process.is_alive():
            process.kill()
        outcome = result[0] if result else "timed out"
    return outcome == "passed"


def run_baseline(programs: list[str], timeout: float = 3.0, threads: int = 4) -> list[bool]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda p: check_correctness(p, timeout), programs))

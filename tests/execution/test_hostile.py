"""Hostile programs: each is contained with the right verdict, and nothing outside is touched.

All of them run in one batch (as in a real round, mixed with honest programs), then the
containment checks look at the host: no process of the sandbox uids is left (/proc), sentinel
files outside the sandbox are intact, the parent's secret was not seen, the loopback server got no
connection, and the executor still gives honest programs their verdicts.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import pytest

from iterkd.execution import Executor, Program, SandboxConfig, Status, TestSuite

ADD_TESTS = TestSuite(
    form="humaneval",
    entry_point="add",
    code="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n",
)
# the same checks written so they run inside the sandbox (a loop cannot be split into values)
ADD_LOOP_TESTS = TestSuite(
    form="humaneval",
    entry_point="add",
    code="def check(candidate):\n    for x in [1, 2]:\n        assert abs(candidate(x, 1) - (x + 1)) < 1e-9\n",
)
ADD_ABS_TESTS = TestSuite(
    form="humaneval",
    entry_point="add",
    code="def check(candidate):\n    assert abs(candidate(1, 2) - 3) < 1e-9\n",
)
UNITTEST_TESTS = TestSuite(
    form="block", code="import unittest\nunittest.TestCase().assertEqual(add(1, 2), 3)\n"
)
GOOD = "def add(a, b):\n    return a + b\n"
SECRET_NAME = "ITERKD_TEST_SECRET"


@dataclass(frozen=True)
class Hostile:
    name: str
    source: str
    expected: Status
    _: KW_ONLY
    tests: TestSuite = field(default_factory=lambda: ADD_TESTS)
    signal: str | None = None
    exception: str | None = None


def hostile_programs(sentinel_dir: Path, home_sentinel: Path, port: int) -> list[Hostile]:
    sentinel = str(sentinel_dir / "keep.txt")
    loop = "def add(a, b):\n    while True:\n        pass\n"
    return [
        # ---- time
        Hostile("infinite_loop", loop, Status.TIMEOUT),
        Hostile(
            "loop_swallows_every_exception",
            "def add(a, b):\n    while True:\n        try:\n            while True:\n"
            "                pass\n        except BaseException:\n            pass\n",
            Status.TIMEOUT,
        ),
        Hostile(
            "itimer_off_and_sigterm_ignored",
            "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "signal.setitimer(signal.ITIMER_REAL, 0)\n" + loop,
            Status.TIMEOUT,
        ),
        Hostile("sleep_at_import", "import time\ntime.sleep(1000)\n" + GOOD, Status.TIMEOUT),
        Hostile(
            "closed_stdout_then_loop",
            "import os\nos.close(1)\nos.close(2)\n" + loop,
            Status.TIMEOUT,
        ),
        Hostile(
            "subprocess_sleeps",
            "import subprocess\nsubprocess.run(['sleep', '1000'])\n" + GOOD,
            Status.TIMEOUT,
        ),
        Hostile(
            "raise_own_cpu_limit",
            "import resource\ninf = resource.RLIM_INFINITY\n"
            "resource.setrlimit(resource.RLIMIT_CPU, (inf, inf))\n" + GOOD,
            Status.ERROR,
            exception="ValueError",
        ),
        # ---- memory and recursion
        Hostile(
            "list_of_1e10", "x = [0] * 10**10\n" + GOOD, Status.MEMORY, exception="MemoryError"
        ),
        Hostile(
            "bytearray_50gb_in_call",
            "def add(a, b):\n    return len(bytearray(50 * 10**9))\n",
            Status.MEMORY,
        ),
        Hostile(
            "str_of_10_pow_100000",
            "def add(a, b):\n    return len(str(10**100000)) * 0 + a + b\n",
            Status.ERROR,
            exception="ValueError",
        ),
        Hostile(
            "c_recursion_with_raised_limit_segfaults",
            "import sys\nsys.setrecursionlimit(10**7)\n"
            "class X:\n    def __repr__(self):\n        return repr(X())\nrepr(X())\n" + GOOD,
            Status.CRASHED,
            signal="SIGSEGV",
        ),
        Hostile(
            "ctypes_null_read",
            "import ctypes\nctypes.string_at(0)\n" + GOOD,
            Status.CRASHED,
            signal="SIGSEGV",
        ),
        Hostile("abort", "import os\nos.abort()\n" + GOOD, Status.CRASHED, signal="SIGABRT"),
        # ---- processes and threads
        Hostile(
            "fork_bomb",
            "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
            "        except OSError:\n            pass\n",
            Status.TIMEOUT,
        ),
        Hostile(
            "fork_bomb_uncaught", "import os\nwhile True:\n    os.fork()\n" + GOOD, Status.ERROR
        ),
        Hostile(
            "fork_setsid_sleep_escapes_killpg",
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(1000)\n    os._exit(0)\n" + GOOD,
            Status.PASSED,
        ),
        Hostile(
            "daemon_writes_sentinel_later",
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(2)\n"
            f"    open({str(sentinel_dir / 'late.txt')!r}, 'w').write('x')\n    os._exit(0)\n"
            + GOOD,
            Status.PASSED,
        ),
        Hostile(
            "non_daemon_thread",
            "import threading, time\nthreading.Thread(target=time.sleep, args=(1000,)).start()\n"
            + GOOD,
            Status.PASSED,
        ),
        Hostile(
            "thread_bomb",
            "import threading, time\nfor _ in range(10000):\n"
            "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n" + GOOD,
            Status.ERROR,
            exception="RuntimeError",
        ),
        Hostile(
            "killpg_own_group",
            "import os\nos.killpg(0, 9)\n" + GOOD,
            Status.CRASHED,
            signal="SIGKILL",
        ),
        Hostile(
            "kill_parent",
            "import os\nos.kill(os.getppid(), 9)\n" + GOOD,
            Status.ERROR,
            exception="PermissionError",
        ),
        Hostile(
            "setuid_root",
            "import os\nos.setuid(0)\n" + GOOD,
            Status.ERROR,
            exception="PermissionError",
        ),
        # ---- files and output
        Hostile(
            "million_open_files",
            "fs = [open('/dev/null') for _ in range(10**6)]\n" + GOOD,
            Status.ERROR,
            exception="OSError",
        ),
        Hostile(
            "write_10gb_file",
            "with open('big', 'wb') as f:\n    for _ in range(10**4):\n"
            "        f.write(b'x' * 10**6)\n" + GOOD,
            Status.OUTPUT_LIMIT,
            signal="SIGXFSZ",
        ),
        Hostile(
            "infinite_print",
            "def add(a, b):\n    while True:\n        print('spam' * 100)\n",
            Status.OUTPUT_LIMIT,
        ),
        Hostile(
            "infinite_stderr",
            "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n" + GOOD,
            Status.OUTPUT_LIMIT,
        ),
        Hostile("input_call", "x = input()\n" + GOOD, Status.ERROR, exception="EOFError"),
        Hostile(
            "rmtree_home",
            "import os, shutil\nshutil.rmtree(os.path.expanduser('~'), ignore_errors=True)\n"
            f"shutil.rmtree({str(home_sentinel.parent)!r}, ignore_errors=True)\n"
            f"os.remove({str(home_sentinel)!r}) if os.path.exists({str(home_sentinel)!r}) else None\n"
            + GOOD,
            Status.PASSED,  # it cannot even see the real home: nothing to remove, tests pass
        ),
        Hostile(
            "write_sentinel_dir_world_writable",
            f"open({str(sentinel_dir / 'new.txt')!r}, 'w').write('x')\n" + GOOD,
            Status.ERROR,
        ),
        Hostile(
            "overwrite_sentinel", f"open({sentinel!r}, 'w').write('gone')\n" + GOOD, Status.ERROR
        ),
        Hostile(
            "write_into_repo", f"open({str(Path.cwd() / 'HACKED')!r}, 'w')\n" + GOOD, Status.ERROR
        ),
        Hostile(
            "symlinks_to_outside_then_cleanup",
            f"import os\nos.symlink({sentinel!r}, 'link')\nos.symlink('/', 'root')\n" + GOOD,
            Status.PASSED,
        ),
        Hostile(
            "chmod_000_tree",
            "import os\nos.makedirs('d/e')\nopen('d/e/f', 'w').write('x')\nos.chmod('d/e', 0)\n"
            "os.chmod('d', 0)\n" + GOOD,
            Status.PASSED,
        ),
        # ---- network and secrets
        Hostile(
            "connect_to_host_loopback_server",
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n" + GOOD,
            Status.ERROR,
            exception="OSError",
        ),
        Hostile(
            "only_loopback_interface_and_it_is_down",
            "import socket\ndef add(a, b):\n"
            "    names = [n for _, n in socket.if_nameindex()]\n"
            "    return a + b if names == ['lo'] else -99\n",
            Status.PASSED,
        ),
        Hostile(
            "environ_secret",
            f"import os\ndef add(a, b):\n    return a + b if {SECRET_NAME!r} not in os.environ else -1\n",
            Status.PASSED,
        ),
        Hostile(
            "proc_environ_scan_for_secret",
            "import os\ndef leaked():\n    for pid in os.listdir('/proc'):\n        try:\n"
            "            with open(f'/proc/{pid}/environ', 'rb') as f:\n"
            f"                if {SECRET_NAME.encode()!r} in f.read():\n"
            "                    return True\n        except OSError:\n            pass\n"
            "    return False\ndef add(a, b):\n    return -1 if leaked() else a + b\n",
            Status.PASSED,
        ),
        # ---- false passes
        Hostile(
            "sys_exit_0_at_import",
            "import sys\nsys.exit(0)\n" + GOOD,
            Status.ERROR,
            exception="SystemExit",
        ),
        Hostile(
            "sys_exit_0_in_call", "import sys\ndef add(a, b):\n    sys.exit(0)\n", Status.ERROR
        ),
        Hostile("os_exit_0_at_import", "import os\nos._exit(0)\n" + GOOD, Status.CRASHED),
        Hostile(
            "os_exit_0_in_call", "import os\ndef add(a, b):\n    os._exit(0)\n", Status.CRASHED
        ),
        Hostile(
            "eq_always_true",
            "class Any:\n    def __eq__(self, other):\n        return True\n"
            "def add(a, b):\n    return Any()\n",
            Status.FAILED,
        ),
        Hostile(
            "lying_int_subclass",
            "class L(int):\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = int.__hash__\ndef add(a, b):\n    return L(0)\n",
            Status.FAILED,
        ),
        Hostile(
            "lying_str_subclass",
            "class S(str):\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = str.__hash__\ndef add(a, b):\n    return S('x')\n",
            Status.FAILED,
        ),
        Hostile(
            "patch_builtins_abs_in_sandbox_checked_test",
            "import builtins\nbuiltins.abs = lambda x: 0\n"
            "def add(a, b):\n    import builtins\n    builtins.abs = lambda x: 0\n    return 0\n",
            Status.FAILED,
            tests=ADD_LOOP_TESTS,
        ),
        Hostile(
            "patch_builtins_abs_supervisor_checked_test",
            "import builtins\nbuiltins.abs = lambda x: 0\ndef add(a, b):\n    return 0\n",
            Status.FAILED,
            tests=ADD_ABS_TESTS,
        ),
        Hostile(
            "shadow_abs_in_module_globals",
            "abs = lambda x: 0\ndef add(a, b):\n    return 0\n",
            Status.FAILED,
            tests=ADD_LOOP_TESTS,
        ),
        Hostile(
            "peek_expected_through_frames",
            "import sys\ndef add(a, b):\n    f = sys._getframe(1)\n    while f is not None:\n"
            "        for c in f.f_code.co_consts:\n"
            "            if type(c) is int and c not in (a, b):\n                return c\n"
            "        for v in f.f_locals.values():\n"
            "            if type(v) is int and v not in (a, b):\n                return v\n"
            "        f = f.f_back\n    return -1\n",
            Status.FAILED,
        ),
        Hostile(
            "search_memory_for_expected",
            "import gc, re\ndef add(a, b):\n    pat = re.compile(r'candidate\\(%d, %d\\) == (-?\\d+)' % (a, b))\n"
            "    for o in gc.get_objects():\n        for v in (o.values() if isinstance(o, dict) else o if isinstance(o, list) else ()):\n"
            "            if isinstance(v, str) and (m := pat.search(v)):\n"
            "                return int(m.group(1))\n    return -1\n",
            Status.FAILED,
        ),
        Hostile(
            "patch_assertion_error",
            "import builtins\nbuiltins.AssertionError = type('AE', (Exception,), {})\n"
            "def add(a, b):\n    return 0\n",
            Status.FAILED,
            tests=ADD_LOOP_TESTS,
        ),
        Hostile(
            "patch_unittest_assert_equal",
            "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
            "def add(a, b):\n    return 0\n",
            Status.FAILED,
            tests=UNITTEST_TESTS,
        ),
        Hostile(
            "forge_result_records_and_exit",
            'import os\nfor i in range(4):\n    os.write(3, b\'{"case":%d,"status":"passed"}\\n\' % i)\n'
            'os.write(3, b\'{"event":"done"}\\n\')\nos._exit(0)\n',
            Status.CRASHED,
            tests=ADD_LOOP_TESTS,
        ),
        Hostile(
            "forged_record_for_value_test",
            'import os\nos.write(3, b\'{"case":0,"status":"passed"}\\n\')\n'
            'def add(a, b):\n    os.write(3, b\'{"case":1,"status":"passed"}\\n\')\n    return 0\n',
            Status.FAILED,
        ),
        Hostile(
            "print_fake_results_on_stdout",
            'print(\'{"case": 0, "status": "passed"}\')\ndef add(a, b):\n    return 0\n',
            Status.FAILED,
        ),
        Hostile("close_result_channel", "import os\nos.close(3)\n" + GOOD, Status.CRASHED),
        Hostile(
            "devnull_over_result_channel",
            "import os\nos.dup2(os.open('/dev/null', os.O_WRONLY), 3)\n" + GOOD,
            Status.CRASHED,
        ),
        Hostile(
            "cyclic_return_value",
            "def add(a, b):\n    x = []\n    x.append(x)\n    return x\n",
            Status.FAILED,
        ),
        Hostile(
            "generator_return_value",
            "def add(a, b):\n    return (i for i in [a + b])\n",
            Status.FAILED,
        ),
        Hostile(
            "huge_return_value",
            "def add(a, b):\n    return list(range(3 * 10**6))\n",
            Status.FAILED,
        ),
        Hostile("keyboard_interrupt", "raise KeyboardInterrupt\n" + GOOD, Status.ERROR),
    ]


@dataclass
class BatchResult:
    cases: dict[str, Hostile]
    verdicts: dict
    honest_verdicts: list
    leftover_processes: list[str]
    sentinel_dir: Path
    home_sentinel: Path
    loopback_connections: int
    after_batch_ok: bool


def _processes_of(uids: range) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) in uids:
            found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()!r}")
    return found


def _accepted(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> BatchResult:
    sentinel_dir = tmp_path_factory.mktemp("sentinel")
    sentinel_dir.chmod(0o777)  # world-writable: only the sandbox's mounts keep programs out
    (sentinel_dir / "keep.txt").write_text("keep")
    home_dir = Path.home() / f".iterkd-sentinel-{uuid.uuid4().hex[:8]}"
    home_dir.mkdir()
    home_sentinel = home_dir / "keep.txt"
    home_sentinel.write_text("keep")
    os.environ[SECRET_NAME] = "s3cr3t-" + uuid.uuid4().hex
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    cases = hostile_programs(sentinel_dir, home_sentinel, server.getsockname()[1])
    if os.geteuid() != 0:
        cases = [c for c in cases if c.name != "kill_parent"]
    programs = [Program(id=c.name, source=c.source, tests=c.tests) for c in cases]
    honest = [Program(id=f"honest-{i}", source=GOOD, tests=ADD_TESTS) for i in range(6)]
    mixed = [p for pair in zip(programs, honest * 20, strict=False) for p in pair]
    mixed += programs[len(honest) * 20 :]
    try:
        with Executor(SandboxConfig(timeout_s=3.0, memory_mb=1024)) as executor:
            verdicts = {v.program_id: v for v in executor.run(mixed)}
            leftovers = _processes_of(executor.sandbox_uids)
            after = executor.run([Program(id="after", source=GOOD, tests=ADD_TESTS)])[0]
        yield BatchResult(
            cases={c.name: c for c in cases},
            verdicts=verdicts,
            honest_verdicts=[v for k, v in verdicts.items() if k.startswith("honest-")],
            leftover_processes=leftovers,
            sentinel_dir=sentinel_dir,
            home_sentinel=home_sentinel,
            loopback_connections=_accepted(server),
            after_batch_ok=after.status is Status.PASSED,
        )
    finally:
        server.close()
        os.environ.pop(SECRET_NAME, None)
        for path in home_dir.iterdir():
            path.unlink()
        home_dir.rmdir()


def test_there_are_at_least_40_hostile_programs(batch: BatchResult) -> None:
    assert len(batch.cases) >= 40


@pytest.mark.parametrize(
    "name", [c.name for c in hostile_programs(Path("/x"), Path("/x/y"), 1)], ids=str
)
def test_hostile_program_gets_the_right_verdict(batch: BatchResult, name: str) -> None:
    if name not in batch.cases:
        pytest.skip("needs root")
    case, verdict = batch.cases[name], batch.verdicts[name]
    assert verdict.status is case.expected, (verdict.status, verdict.message, verdict.output[:300])
    if case.signal:
        assert verdict.signal == case.signal
    if case.exception:
        assert verdict.exception_type == case.exception, verdict.message
    if case.expected is Status.TIMEOUT:
        assert verdict.wall_time_s is not None and verdict.wall_time_s >= 3.0


def test_honest_programs_in_the_same_batch_all_pass(batch: BatchResult) -> None:
    assert len(batch.honest_verdicts) == 6
    assert all(v.status is Status.PASSED for v in batch.honest_verdicts)


def test_no_process_is_left_behind(batch: BatchResult) -> None:
    assert batch.leftover_processes == []


def test_nothing_outside_the_sandbox_was_written(batch: BatchResult) -> None:
    assert sorted(p.name for p in batch.sentinel_dir.iterdir()) == ["keep.txt"]
    assert (batch.sentinel_dir / "keep.txt").read_text() == "keep"
    assert batch.home_sentinel.read_text() == "keep"
    assert not (Path.cwd() / "HACKED").exists()


def test_no_connection_reached_the_host(batch: BatchResult) -> None:
    assert batch.loopback_connections == 0


def test_supervisor_still_works_after_the_batch(batch: BatchResult) -> None:
    assert batch.after_batch_ok


def test_non_daemon_thread_does_not_hold_the_program(batch: BatchResult) -> None:
    assert batch.verdicts["non_daemon_thread"].wall_time_s < 2.0

"""The executor end to end: test forms, verdict details, determinism, bad input, the pool."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iterkd.execution import (
    RUNNERS,
    Executor,
    Program,
    ProgramVerdict,
    SandboxConfig,
    Status,
    TestStatus,
    TestSuite,
)
from iterkd.execution.runners import PreparedJob
from iterkd.execution.testforms import Case, CompiledTests
from iterkd.execution.verdicts import build_verdict

ADD = "def add(a, b):\n    return a + b\n"
SUB = "def add(a, b):\n    return a - b\n"
HUMANEVAL = TestSuite(
    form="humaneval",
    entry_point="add",
    code="METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
    "    assert candidate(2, 2) == 4, 'two and two'\n",
)
ASSERTS = TestSuite(form="asserts", asserts=["assert add(1, 2) == 3", "assert add(0, 5) == 5"])
BLOCK = TestSuite(form="block", code="x = add(2, 3)\nassert x == 5\nassert add(x, 1) == 6\n")


@pytest.fixture(scope="module")
def executor() -> Executor:
    with Executor(SandboxConfig(timeout_s=5.0)) as ex:
        yield ex


def run_one(executor: Executor, source: str | bytes, tests: TestSuite, **kw: Any) -> ProgramVerdict:
    return executor.run([Program(id="p", source=source, tests=tests, **kw)])[0]


@pytest.mark.parametrize(
    "tests", [HUMANEVAL, ASSERTS, BLOCK], ids=["humaneval", "asserts", "block"]
)
def test_each_test_form_passes_a_right_program_and_fails_a_wrong_one(
    executor: Executor, tests: TestSuite
) -> None:
    good, bad = executor.run(
        [Program(id="good", source=ADD, tests=tests), Program(id="bad", source=SUB, tests=tests)]
    )
    assert good.status is Status.PASSED and good.tests_passed == good.tests_total >= 2
    assert bad.status is Status.FAILED and bad.tests_passed < bad.tests_total


def test_verdict_says_which_test_failed_and_measures_the_run(executor: Executor) -> None:
    verdict = run_one(executor, SUB, HUMANEVAL)
    first, second = verdict.tests
    assert first.status is TestStatus.FAILED
    assert first.message == "expected 3, got -1"
    assert first.checked_by == "supervisor"
    assert first.source == "assert candidate(1, 2) == 3"
    assert second.status is TestStatus.FAILED and "got 0" in second.message
    assert verdict.message.startswith("assert candidate(1, 2) == 3")
    assert verdict.wall_time_s > 0 and verdict.cpu_time_s > 0 and verdict.peak_memory_mb > 1
    assert verdict.exit_code == 0 and verdict.signal is None


def test_exceptions_are_reported_with_their_type(executor: Executor) -> None:
    verdict = run_one(executor, "def add(a, b):\n    return {}[a]\n", ASSERTS)
    assert verdict.status is Status.ERROR
    assert verdict.exception_type == "KeyError"
    assert verdict.tests[0].status is TestStatus.ERROR


def test_output_of_the_program_is_kept(executor: Executor) -> None:
    verdict = run_one(executor, "print('hello from the program')\n" + ADD, ASSERTS)
    assert verdict.status is Status.PASSED
    assert "hello from the program" in verdict.output


def test_verdicts_are_deterministic_across_runs_and_executors(executor: Executor) -> None:
    source = (
        "import random\n"
        "def add(a, b):\n"
        "    return [hash('abc') % 1000, random.randint(0, 10**6), sorted({'x', 'y', 'z'})]\n"
    )
    programs = [Program(id=str(i), source=source, tests=ASSERTS) for i in range(4)]
    first = executor.run(programs)
    with Executor(SandboxConfig(timeout_s=5.0)) as other:
        second = other.run(programs)

    def key(v: ProgramVerdict) -> tuple:
        return v.status, v.message, tuple((t.status, t.message) for t in v.tests)

    assert {key(v) for v in first} == {key(v) for v in second}
    assert len({key(v) for v in first}) == 1


def test_bad_inputs_get_clear_verdicts_and_the_batch_goes_on(executor: Executor) -> None:
    cases = {
        "non_utf8": (b"def add(a, b):\n    return '\xff'\n", ASSERTS, "not valid UTF-8: byte 0xff"),
        "nul": ("def add(a, b):\x00\n    return 1\n", ASSERTS, "NUL byte at offset 14"),
        "ten_mb": ("x = 1\n" * (10 * 1024 * 1024 // 6), ASSERTS, "over max_source_bytes"),
        "bad_assert_syntax": (
            ADD,
            TestSuite(form="asserts", asserts=["assert add(1, 2) == 3", "assert add(1,, 2)"]),
            "tests.asserts[1]: invalid syntax",
        ),
        "no_assert": (ADD, TestSuite(form="asserts", asserts=["add(1, 2)"]), "no test"),
        "empty_list": (ADD, TestSuite(form="asserts", asserts=[]), "no test"),
        "no_check": (
            ADD,
            TestSuite(form="humaneval", entry_point="add", code="x = 1"),
            "no `def check",
        ),
    }
    programs = [Program(id=k, source=src, tests=t) for k, (src, t, _) in cases.items()]
    programs.append(
        Program(id="missing_entry", source="def other():\n    return 1\n", tests=HUMANEVAL)
    )
    programs.append(Program(id="unknown_language", source=ADD, tests=ASSERTS, language="cobol"))
    programs.append(Program(id="fine", source=ADD, tests=ASSERTS))
    verdicts = {v.program_id: v for v in executor.run(programs)}
    for name, (_, _, message) in cases.items():
        assert verdicts[name].status is Status.INVALID, name
        assert message in verdicts[name].message, (name, verdicts[name].message)
    assert verdicts["missing_entry"].status is Status.ERROR
    assert verdicts["missing_entry"].message == "entry point 'add' is not defined"
    assert verdicts["unknown_language"].status is Status.INVALID
    assert "no runner for language 'cobol'" in verdicts["unknown_language"].message
    assert verdicts["fine"].status is Status.PASSED


def test_malformed_suites_are_refused_when_built() -> None:
    with pytest.raises(ValidationError, match="form 'asserts' takes `asserts`"):
        TestSuite(form="asserts", code="assert True")
    with pytest.raises(ValidationError, match="asserts"):
        TestSuite(form="asserts", asserts="assert f(1) == 2")  # a string, not a list
    with pytest.raises(ValidationError, match="needs `entry_point`"):
        TestSuite(form="humaneval", code="def check(candidate):\n    assert candidate()\n")


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="timeout\n"):
        SandboxConfig(timeout=3)


def test_programs_run_in_parallel_on_every_worker() -> None:
    source = "import os, time\ntime.sleep(0.3)\ndef add(a, b):\n    return os.getuid()\n"
    config = SandboxConfig(workers=2, timeout_s=5.0, straggler_after_s=10.0)
    with Executor(config) as executor:
        verdicts = executor.run(
            [Program(id=str(i), source=source, tests=ASSERTS) for i in range(6)]
        )
        uids = {v.tests[0].message.split("got ")[1] for v in verdicts}
        assert executor.stats["workers_started"] == 2
    if os.geteuid() == 0:
        assert len(uids) == 2  # each slot runs as its own uid


def test_a_slow_program_does_not_hold_back_the_ones_behind_it() -> None:
    sleeper = "import time\ntime.sleep(2)\n" + ADD
    programs = [Program(id="slow", source=sleeper, tests=ASSERTS)]
    programs += [Program(id=f"quick-{i}", source=ADD, tests=ASSERTS) for i in range(4)]
    finished: list[str] = []
    config = SandboxConfig(workers=1, timeout_s=5.0, straggler_after_s=0.2)
    with Executor(config) as executor:
        verdicts = executor.run(programs, on_verdict=lambda i, v: finished.append(v.program_id))
        assert executor.stats["workers_started"] == 2  # one more slot beside the straggler
    assert all(v.status is Status.PASSED for v in verdicts)
    assert finished[-1] == "slow"  # the quick ones ran beside it, not after it


def test_cpu_time_of_a_killed_program_is_measured() -> None:
    with Executor(SandboxConfig(timeout_s=1.5)) as executor:
        loop = "def add(a, b):\n    while True:\n        pass\n"
        verdict = executor.run([Program(id="loop", source=loop, tests=ASSERTS)])[0]
    assert verdict.status is Status.TIMEOUT
    assert verdict.cpu_time_s > 0.5  # the program's own, not just its init's


def test_workers_are_recycled_every_k_programs() -> None:
    with Executor(SandboxConfig(workers=1, recycle_after=2, timeout_s=5.0)) as executor:
        verdicts = executor.run([Program(id=str(i), source=ADD, tests=ASSERTS) for i in range(5)])
        assert all(v.status is Status.PASSED for v in verdicts)
        assert executor.stats["workers_replaced"] == 2
        assert executor.stats["workers_started"] == 3


def test_a_dead_worker_costs_only_its_program_and_is_replaced() -> None:
    slow = "import time\ntime.sleep(3)\n" + ADD
    with Executor(SandboxConfig(workers=1, timeout_s=10.0)) as executor:
        executor.run([Program(id="warm", source=ADD, tests=ASSERTS)])
        (pid,) = executor.worker_pids()
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        slow_v, after = executor.run(
            [
                Program(id="slow", source=slow, tests=ASSERTS),
                Program(id="after", source=ADD, tests=ASSERTS),
            ]
        )
        assert executor.worker_pids() != [pid]
    assert slow_v.status is Status.CRASHED and "worker died" in slow_v.message
    assert after.status is Status.PASSED


def test_isolation_is_recorded_in_every_verdict(executor: Executor) -> None:
    iso = run_one(executor, ADD, ASSERTS).isolation
    assert iso["net_namespace"] and iso["rlimits"]
    if os.geteuid() == 0:
        assert iso["uid_drop"] and iso["pid_namespace"] and iso["mount_namespace"]
        assert iso["kill_scope"] == "pid_namespace"
        assert iso["notes"] == []


def test_turning_network_isolation_off_is_said_in_the_verdict() -> None:
    with Executor(SandboxConfig(net_namespace=False, bubblewrap="off", timeout_s=5.0)) as executor:
        iso = executor.run([Program(id="p", source=ADD, tests=ASSERTS)])[0].isolation
    assert iso["net_namespace"] is False
    assert any("NETWORK IS NOT ISOLATED" in note for note in iso["notes"])


@pytest.mark.skipif(os.geteuid() != 0, reason="uid sweep needs root")
def test_without_pid_namespace_escaped_processes_are_still_killed() -> None:
    escape = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(1000)\n    os._exit(0)\n" + ADD
    )
    config = SandboxConfig(pid_namespace=False, bubblewrap="off", timeout_s=5.0)
    with Executor(config) as executor:
        verdict = executor.run([Program(id="p", source=escape, tests=ASSERTS)])[0]
        left = [
            p
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _uid(p) in executor.sandbox_uids
        ]
    assert verdict.status is Status.PASSED
    assert verdict.isolation["kill_scope"] == "uid"
    assert left == []


def _uid(proc: Path) -> int:
    try:
        line = next(x for x in (proc / "status").read_text().splitlines() if x.startswith("Uid:"))
    except (OSError, StopIteration):
        return -1
    return int(line.split()[1])


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_bubblewrap_layer_hides_host_processes() -> None:
    source = "import os\ndef add(a, b):\n    return len([p for p in os.listdir('/proc') if p.isdigit()])\n"
    tests = TestSuite(form="asserts", asserts=["assert add(0, 0) < 10"])
    with Executor(SandboxConfig(bubblewrap="on", timeout_s=5.0)) as executor:
        verdict = executor.run([Program(id="p", source=source, tests=tests)])[0]
    assert verdict.isolation["bubblewrap"] is True
    assert verdict.status is Status.PASSED, verdict.message


def test_bubblewrap_on_without_bwrap_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from iterkd.execution import executor as executor_module

    monkeypatch.setattr(executor_module.shutil, "which", lambda name: None)
    with pytest.raises(executor_module.SandboxError, match="bwrap` is not installed"):
        Executor(SandboxConfig(bubblewrap="on"))


class ShellRunner:
    """A runner of the `exec` kind, as other languages will have: a shell script that writes
    the harness's records to fd 3 itself."""

    language = "test-sh"

    def prepare(self, program: Program, config: SandboxConfig) -> PreparedJob:
        case = Case("exec", "", "script ran", is_test=True)
        compiled = CompiledTests(imports="", setup="", cases=[case], entry_point=None)
        payload = {
            "kind": "exec",
            "argv": ["/bin/sh", "main.sh"],
            "files": {"main.sh": program.source},
        }
        return PreparedJob(payload, compiled)

    def interpret(
        self, program: Program, job: PreparedJob, raw: dict, isolation: dict
    ) -> ProgramVerdict:
        return build_verdict(program.id, job.compiled, raw, isolation)


def test_exec_kind_runs_other_languages_through_the_same_sandbox(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNNERS, "test-sh", ShellRunner())
    records = '{"event":"loaded"}\\n{"case":0,"status":"passed"}\\n{"event":"done"}\\n'
    ok = f"printf '{records}' >&3\n"
    loops = "while true; do :; done\n"
    programs = [
        Program(id="ok", source=ok, tests=ASSERTS, language="test-sh"),
        Program(id="silent", source="exit 0\n", tests=ASSERTS, language="test-sh"),
        Program(
            id="net",
            source="exec 3>&-; getent hosts localhost >/dev/null\n",
            tests=ASSERTS,
            language="test-sh",
        ),
    ]
    with Executor(SandboxConfig(timeout_s=1.0)) as short:
        loop = short.run([Program(id="loop", source=loops, tests=ASSERTS, language="test-sh")])[0]
    verdicts = {v.program_id: v for v in executor.run(programs)}
    assert verdicts["ok"].status is Status.PASSED
    assert verdicts["ok"].language == "test-sh"
    assert verdicts["silent"].status is Status.CRASHED
    assert loop.status is Status.TIMEOUT


def test_interpreter_paths_under_tmp_stay_visible_read_only(tmp_path: Path) -> None:
    """A checkout or venv in /tmp must survive the private /tmp of the workers (as in CI)."""
    if not str(tmp_path).startswith("/tmp/"):
        pytest.skip("pytest's tmp_path is not under /tmp here")
    tmp_path.chmod(0o755)  # a checkout or venv is world-readable; its parents need not be
    (tmp_path / "helper_mod_for_iterkd.py").write_text("VALUE = 41\n")
    source = (
        "import helper_mod_for_iterkd\n"
        "def add(a, b):\n"
        "    try:\n"
        f"        open({str(tmp_path / 'x.txt')!r}, 'w')\n"
        "        return -1\n"
        "    except OSError:\n"
        "        return a + b + helper_mod_for_iterkd.VALUE - 41\n"
    )
    config = SandboxConfig(timeout_s=5.0, extra_env={"PYTHONPATH": str(tmp_path)})
    with Executor(config) as executor:
        verdict = executor.run([Program(id="p", source=source, tests=ASSERTS)])[0]
    assert verdict.status is Status.PASSED, verdict.message
    assert (tmp_path / "helper_mod_for_iterkd.py").exists()
    assert not (tmp_path / "x.txt").exists()

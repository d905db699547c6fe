"""Build a ProgramVerdict from what a sandbox worker reported.

A program passes only if the supervisor got exactly one passing record for every case and the
harness's `done`, with no limit hit. Exit codes are never read as success: `sys.exit(0)` or
`os._exit(0)` before the tests leave cases without records, and so fail.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iterkd.execution.models import ProgramVerdict, Status, TestResult, TestStatus
from iterkd.execution.testforms import Case, CompiledTests, check_value
from iterkd.execution.values import decode_value

_KILL_STATUS = {
    "timeout": (Status.TIMEOUT, "wall-clock limit exceeded"),
    "output_limit": (Status.OUTPUT_LIMIT, "stdout/stderr over output_limit_bytes"),
    "result_limit": (Status.OUTPUT_LIMIT, "test-result channel over max_result_bytes"),
}
_SIGNAL_STATUS = {
    signal.SIGXCPU: (Status.TIMEOUT, "CPU-time limit exceeded"),
    signal.SIGXFSZ: (Status.OUTPUT_LIMIT, "file-size limit exceeded"),
}
_EVENT_KEYS = {"event", "type", "msg", "status"}
Normalize = Callable[[Any], Any] | None


@dataclass
class _Records:
    """The harness's records, parsed defensively."""

    events: dict[str, dict] = field(default_factory=dict)
    cases: dict[int, dict] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)


def _parse_records(text: str, n_cases: int) -> _Records:
    records = _Records()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            records.violations.append("unparseable result record")
            continue
        if type(record) is not dict:
            records.violations.append("result record is not an object")
        elif "event" in record:
            _add_event(records, record)
        else:
            _add_case(records, record, n_cases)
    return records


def _add_event(records: _Records, record: dict) -> None:
    name = record["event"]
    if type(name) is not str or name in records.events or set(record) - _EVENT_KEYS:
        records.violations.append(f"unexpected event record {str(name)[:40]!r}")
        return
    if "done" in records.events:
        records.violations.append("record after done")
    records.events[name] = record


def _add_case(records: _Records, record: dict, n_cases: int) -> None:
    index = record.get("case")
    if type(index) is not int or not 0 <= index < n_cases:
        records.violations.append("record for an unknown test")
    elif "loaded" not in records.events:  # written while the program was being imported: forged
        records.violations.append("test result before the program was loaded")
    elif record.get("status") == "start":
        records.started.add(index)
    elif index in records.cases:
        records.violations.append(f"two results for test {index}")
    elif "done" in records.events:
        records.violations.append("record after done")
    else:
        records.cases[index] = record


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    return value[:1000] if type(value) is str else ""


def _case_result(
    index: int, case: Case, record: dict | None, timed_out: bool, normalize: Normalize
) -> TestResult:
    base = {"index": index, "source": case.source, "is_test": case.is_test}
    base["checked_by"] = case.checked_by
    if record is None:
        status = TestStatus.TIMEOUT if timed_out else TestStatus.NOT_RUN
        return TestResult(status=status, **base)
    status = record.get("status")
    if case.kind == "eval" and status == "value":
        return _checked(case, record, base, normalize)
    if case.kind == "exec" and status == "passed":
        return TestResult(status=TestStatus.PASSED, **base)
    if status in ("failed", "bad_value"):
        return TestResult(status=TestStatus.FAILED, message=_text(record, "msg"), **base)
    if status == "error":
        message, exc_type = _text(record, "msg"), _text(record, "type") or "Exception"
        return TestResult(status=TestStatus.ERROR, message=message, exception_type=exc_type, **base)
    return TestResult(status=TestStatus.FAILED, message="malformed result record", **base)


def _checked(case: Case, record: dict, base: dict[str, Any], normalize: Normalize) -> TestResult:
    try:
        value = decode_value(record.get("value"))
        value = normalize(value) if normalize is not None else value
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        return TestResult(status=TestStatus.FAILED, message=f"bad value record: {exc}", **base)
    assert case.expectation is not None
    ok, message = check_value(case.expectation, value)
    return TestResult(
        status=TestStatus.PASSED if ok else TestStatus.FAILED, message=message, **base
    )


def build_verdict(
    program_id: str, compiled: CompiledTests, raw: dict[str, Any], isolation: dict[str, Any]
) -> ProgramVerdict:
    records = _parse_records(raw.get("results", ""), len(compiled.cases))
    timed_out = raw.get("kill_reason") == "timeout" or raw.get("signal") == signal.SIGXCPU
    running = max(records.started - set(records.cases), default=None) if timed_out else None
    tests = [
        _case_result(i, case, records.cases.get(i), timed_out and i == running, compiled.normalize)
        for i, case in enumerate(compiled.cases)
    ]
    verdict = ProgramVerdict(
        program_id=program_id,
        status=Status.PASSED,
        tests=tests,
        tests_total=sum(t.is_test for t in tests),
        tests_passed=sum(t.is_test and t.status is TestStatus.PASSED for t in tests),
        isolation=isolation,
        **_measurements(raw),
    )
    _set_status(verdict, records, raw)
    return verdict


def _measurements(raw: dict[str, Any]) -> dict[str, Any]:
    sig = raw.get("signal")
    return {
        "wall_time_s": raw.get("wall_s"),
        "cpu_time_s": raw.get("cpu_s"),
        "peak_memory_mb": round(raw["peak_rss_kb"] / 1024, 2) if raw.get("peak_rss_kb") else None,
        "exit_code": raw.get("exit_code"),
        "signal": signal.Signals(sig).name if sig else None,
        "output": raw.get("output", ""),
        "output_bytes": raw.get("output_bytes", 0),
    }


def _set_status(verdict: ProgramVerdict, records: _Records, raw: dict[str, Any]) -> None:
    """The first cause that applies, from the outside in: limits, load, tests, protocol."""
    status, message, exc_type = _limit_status(raw)
    if status is None:
        status, message, exc_type = _event_status(records)
    if status is None:
        status, message, exc_type = _tests_status(verdict.tests, raw)
    if status is None and records.violations:
        status, message = Status.CRASHED, "; ".join(sorted(set(records.violations)))[:500]
    if status is None and "done" not in records.events:
        status, message = _missing_done(raw)
    verdict.status = status or Status.PASSED
    verdict.message, verdict.exception_type = message or "", exc_type


def _limit_status(raw: dict[str, Any]) -> tuple:
    if raw.get("kill_reason") in _KILL_STATUS:
        status, message = _KILL_STATUS[raw["kill_reason"]]
        return status, message, None
    if raw.get("signal") in _SIGNAL_STATUS:
        status, message = _SIGNAL_STATUS[raw["signal"]]
        return status, message, None
    return None, None, None


def _event_status(records: _Records) -> tuple:
    for event in ("test_import_error", "load_error", "test_setup_error"):
        record = records.events.get(event)
        if record is not None:
            exc_type = _text(record, "type") or "Exception"
            status = Status.MEMORY if exc_type == "MemoryError" else Status.ERROR
            where = {"load_error": "program", "test_import_error": "test imports"}.get(
                event, "test setup"
            )
            return status, f"{where}: {exc_type}: {_text(record, 'msg')}", exc_type
    if "entry_missing" in records.events:
        return Status.ERROR, _text(records.events["entry_missing"], "msg"), "NameError"
    return None, None, None


def _tests_status(tests: list[TestResult], raw: dict[str, Any]) -> tuple:
    for test in tests:
        if test.status is TestStatus.FAILED:
            return Status.FAILED, f"{test.source}: {test.message}", None
        if test.status is TestStatus.ERROR:
            status = Status.MEMORY if test.exception_type == "MemoryError" else Status.ERROR
            return (
                status,
                f"{test.source}: {test.exception_type}: {test.message}",
                test.exception_type,
            )
        if test.status in (TestStatus.NOT_RUN, TestStatus.TIMEOUT):
            status, message = _missing_done(raw)
            return status, message, None
    return None, None, None


def _missing_done(raw: dict[str, Any]) -> tuple[Status, str]:
    if raw.get("signal"):
        return Status.CRASHED, f"killed by {signal.Signals(raw['signal']).name}"
    if raw.get("exit_code") is not None:
        return Status.CRASHED, f"exited with code {raw['exit_code']} before every test reported"
    return Status.CRASHED, "ended before every test reported"


def invalid_verdict(program_id: str, message: str, language: str) -> ProgramVerdict:
    return ProgramVerdict(
        program_id=program_id, status=Status.INVALID, message=message, language=language
    )

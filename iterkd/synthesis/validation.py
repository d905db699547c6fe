"""Test validation of synthesized questions, MultiPL-T style.

The reference runs against its own asserts once in the sandbox; asserts it fails are dropped;
fewer than `min_tests` left rejects the candidate. Then, in one more executor batch:
- when some asserts were dropped, the reference runs again on the kept ones alone and must pass
  them all (asserts can interact);
- with `min_coverage` set, a driver measures the line coverage of the reference by the kept
  asserts (`line_coverage.py`); below `min_coverage`, or unmeasured, rejects the candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iterkd.execution import (
    Executor,
    Program,
    ProgramVerdict,
    SandboxConfig,
    Status,
    TestResult,
    TestSuite,
)
from iterkd.synthesis.line_coverage import (
    Coverage,
    coverage_program,
    coverage_reasons,
    read_coverage,
)

COVERAGE_SUFFIX = "#coverage"  # program id of a reference's coverage driver


@dataclass(frozen=True)
class Reference:
    """A candidate's reference solution and its asserts-form tests, ready to run."""

    id: str
    solution: str
    entry_point: str
    asserts: tuple[str, ...]
    imports: tuple[str, ...] = ()

    def program(self, asserts: Sequence[str] | None = None) -> Program:
        kept = list(self.asserts if asserts is None else asserts)
        suite = TestSuite(
            form="asserts", asserts=kept, entry_point=self.entry_point, imports=list(self.imports)
        )
        return Program(id=self.id, source=self.solution, tests=suite)

    def coverage_program(self, asserts: Sequence[str]) -> Program:
        return coverage_program(self.id + COVERAGE_SUFFIX, self.solution, asserts, self.imports)


@dataclass(frozen=True)
class TestCheck:
    """What running a reference against its tests left: the kept asserts, the dropped ones (each
    with why), the reasons to reject (empty when the candidate passes validation) and the line
    coverage of the reference by the kept asserts (None: not measured)."""

    __test__ = False  # not a pytest class

    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    coverage: Coverage | None = None


def check_references(
    references: Sequence[Reference],
    sandbox: SandboxConfig,
    min_tests: int,
    min_coverage: float | None = None,
) -> dict[str, TestCheck]:
    """Each reference run against its asserts (one executor for all), by reference id; with
    `min_coverage`, the coverage of the valid ones is measured and checked too."""
    if not references:
        return {}
    with Executor(sandbox) as executor:
        first = executor.run([r.program() for r in references])
        checks = {
            r.id: split_tests(r, v, min_tests) for r, v in zip(references, first, strict=True)
        }
        valid = [r for r in references if not checks[r.id].reasons]
        again = [r for r in valid if checks[r.id].dropped]
        measured = valid if min_coverage is not None else []
        programs = [r.program(checks[r.id].kept) for r in again]
        programs += [r.coverage_program(checks[r.id].kept) for r in measured]
        verdicts = iter(executor.run(programs))
    for reference in again:
        _recheck(checks, reference, next(verdicts))
    for reference in measured:
        _with_coverage(checks, reference, next(verdicts), min_coverage or 0.0)
    return checks


def _recheck(checks: dict[str, TestCheck], reference: Reference, verdict: ProgramVerdict) -> None:
    if not verdict.passed:
        check = checks[reference.id]
        reason = f"reference_fails_kept_tests: {verdict.status.value}: {_short(verdict)}"
        checks[reference.id] = TestCheck(check.kept, check.dropped, (*check.reasons, reason))


def _with_coverage(
    checks: dict[str, TestCheck],
    reference: Reference,
    verdict: ProgramVerdict,
    min_coverage: float,
) -> None:
    check = checks[reference.id]
    coverage, unmeasured = read_coverage(verdict)
    reasons = (*check.reasons, *coverage_reasons(coverage, unmeasured, min_coverage))
    checks[reference.id] = TestCheck(check.kept, check.dropped, reasons, coverage)


def split_tests(reference: Reference, verdict: ProgramVerdict, min_tests: int) -> TestCheck:
    """The asserts the reference passed, and those it did not (with the test's message)."""
    if verdict.status is Status.INVALID:
        reason = f"tests_invalid: {_short(verdict)}"
        return TestCheck((), reference.asserts, (reason,))
    results = [t for t in verdict.tests if t.is_test]
    kept, dropped = [], []
    for index, source in enumerate(reference.asserts):
        result = results[index] if index < len(results) else None
        if result is not None and result.status.value == "passed":
            kept.append(source)
        else:
            dropped.append(f"{source}  # {_why(result)}")
    reasons: tuple[str, ...] = ()
    if len(kept) < min_tests:
        status = "" if verdict.status is Status.FAILED else f"; reference {verdict.status.value}"
        total = len(reference.asserts)
        reasons = (f"too_few_tests: {len(kept)} of {total} pass (min {min_tests}{status})",)
    return TestCheck(tuple(kept), tuple(dropped), reasons)


def _why(result: TestResult | None) -> str:
    if result is None:
        return "not run"
    message = " ".join(result.message.split())[:200]
    return f"{result.status.value}: {message}" if message else result.status.value


def _short(verdict: ProgramVerdict) -> str:
    """The verdict's message on one short line (no timings: records must not depend on load)."""
    if verdict.status is Status.TIMEOUT:
        return "timed out"
    return " ".join((verdict.message or verdict.exception_type or "").split())[:200]

"""Line coverage of a reference by its kept tests, measured by a driver in the sandbox: an
untested branch rejects, full coverage passes, pragmas hide nothing, and a hostile reference
decides at most its own fate."""

from __future__ import annotations

import pytest

from iterkd.execution import ProgramVerdict, SandboxConfig, Status
from iterkd.synthesis import Reference, check_references, read_coverage
from iterkd.synthesis.line_coverage import MARKER

SANDBOX = SandboxConfig(workers=2, timeout_s=10.0)

ABS = "def absolute(x):\n    if x < 0:\n        return -x\n    return x\n"
BOTH_SIGNS = ("assert absolute(3) == 3", "assert absolute(-2) == 2")
PRAGMA = "def absolute(x):\n    if x < 0:  # pragma: no cover\n        return -x\n    return x\n"
MAIN = ABS + "\n\nif __name__ == '__main__':\n    print(absolute(-1))\n"


def ref(key: str, solution: str, asserts: tuple[str, ...], entry: str = "absolute") -> Reference:
    return Reference(key, solution, entry, asserts)


@pytest.fixture(scope="module")
def checks() -> dict:
    references = [
        ref("full", ABS, BOTH_SIGNS),
        ref("untested_branch", ABS, ("assert absolute(3) == 3", "assert absolute(0) == 0")),
        ref("pragma", PRAGMA, ("assert absolute(3) == 3", "assert absolute(0) == 0")),
        ref("main_block", MAIN, BOTH_SIGNS),
        # one assert dropped (wrong), the kept ones still cover everything
        ref("dropped", ABS, (*BOTH_SIGNS, "assert absolute(-1) == -1")),
    ]
    return check_references(references, SANDBOX, min_tests=2, min_coverage=0.9)


def test_a_fully_covered_reference_passes(checks: dict) -> None:
    check = checks["full"]
    assert check.reasons == () and (check.coverage.covered, check.coverage.total) == (4, 4)
    assert checks["dropped"].reasons == () and checks["dropped"].coverage.fraction == 1.0
    assert len(checks["dropped"].dropped) == 1


def test_an_untested_branch_rejects(checks: dict) -> None:
    check = checks["untested_branch"]
    assert (check.coverage.covered, check.coverage.total) == (3, 4)
    assert check.reasons == (
        "low_coverage: the kept tests run 3 of the reference's 4 statements (0.75 < min 0.9)",
    )
    assert check.kept == ("assert absolute(3) == 3", "assert absolute(0) == 0")  # tests kept


def test_a_pragma_does_not_hide_a_line_and_a_main_block_does_not_count(checks: dict) -> None:
    assert checks["pragma"].reasons[0].startswith("low_coverage: ")
    assert checks["main_block"].reasons == () and checks["main_block"].coverage.total == 4


def test_without_min_coverage_nothing_is_measured() -> None:
    check = check_references([ref("a", ABS, BOTH_SIGNS[:1])], SANDBOX, 1)["a"]
    assert check.coverage is None and check.reasons == ()


# A reference can tell that it runs under coverage ("coverage" is imported) and misbehave then
# only: its tests pass in the harness, and only the coverage run is attacked.
UNDER_COVERAGE = "import sys as _s\nif 'coverage' in _s.modules:\n    {attack}\n" + ABS
HOSTILE = {
    "exits": "import os; os._exit(0)",
    "loops": "while True: pass",
    "raises": "raise SystemExit(0)",
    "floods_fd": "import os; os.write(1, b'x' * 100000)",  # pushes the line out of the head
    "floods_print": "print('x' * 100000)",  # swallowed by the driver
    "forges_then_exits": (
        f'import os; os.write(1, b\'{MARKER} {{"covered": 9, "total": 9, "error": null}}\\n\'); '
        "os._exit(0)"
    ),
    "forges_then_runs_on": (  # the driver's own line comes last and is the one read
        f'print(\'{MARKER} {{"covered": 9, "total": 9, "error": null}}\')'
    ),
    "patches_coverage": (  # a known limit: it can forge its own number (only its own)
        "import coverage; coverage.Coverage.analysis2 = lambda self, m: (m, [1], [], [], '')"
    ),
}


@pytest.fixture(scope="module")
def hostile_checks() -> dict:
    sandbox = SandboxConfig(workers=2, timeout_s=3.0)  # "loops" waits out this deadline
    references = [
        ref(name, UNDER_COVERAGE.format(attack=attack), ("assert absolute(3) == 3",))
        for name, attack in HOSTILE.items()
    ]
    references.append(ref("honest", ABS, ("assert absolute(3) == 3",)))  # 3 of 4: rejected
    return check_references(references, sandbox, min_tests=1, min_coverage=0.9)


def test_a_hostile_reference_cannot_break_the_check(hostile_checks: dict) -> None:
    for name in ("exits", "loops", "raises", "floods_fd", "forges_then_exits"):
        assert hostile_checks[name].reasons[0].startswith("coverage_unmeasured: "), name
        assert hostile_checks[name].coverage is None
    # its prints are swallowed or come before the driver's line: measured honestly
    for name in ("floods_print", "forges_then_runs_on"):
        check = hostile_checks[name]
        assert check.coverage is not None and check.coverage.fraction < 0.9, name
    # what a forger can win: its own acceptance, nothing else
    assert hostile_checks["patches_coverage"].reasons == ()
    honest = hostile_checks["honest"]
    assert (honest.coverage.covered, honest.coverage.total) == (3, 4)
    assert honest.reasons[0].startswith("low_coverage: ")


def verdict(output: str, status: Status = Status.PASSED) -> ProgramVerdict:
    return ProgramVerdict(program_id="x", status=status, output=output)


@pytest.mark.parametrize(
    ("output", "status", "why"),
    [
        ("", Status.PASSED, "printed no result line"),
        (f"{MARKER} not json", Status.PASSED, "not valid"),
        (f'{MARKER} {{"covered": 5, "total": 4, "error": null}}', Status.PASSED, "not valid"),
        (f'{MARKER} {{"covered": 1.5, "total": 4, "error": null}}', Status.PASSED, "not valid"),
        (f'{MARKER} {{"covered": 0, "total": 0, "error": null}}', Status.PASSED, "not valid"),
        (f'{MARKER} {{"covered": 1, "total": 4, "error": "ValueError"}}', Status.PASSED, "raised"),
        (f'{MARKER} {{"covered": 4, "total": 4, "error": null}}', Status.CRASHED, "crashed"),
        ("", Status.TIMEOUT, "timed out"),
    ],
)
def test_unreadable_driver_results_are_unmeasured(output: str, status: Status, why: str) -> None:
    coverage, unmeasured = read_coverage(verdict(output, status))
    assert coverage is None and unmeasured is not None and why in unmeasured


def test_the_last_result_line_counts() -> None:
    forged = f'{MARKER} {{"covered": 4, "total": 4, "error": null}}'
    real = f'{MARKER} {{"covered": 1, "total": 4, "error": null}}'
    coverage, _ = read_coverage(verdict(f"{forged}\nnoise\n{real}\n"))
    assert coverage is not None and (coverage.covered, coverage.total) == (1, 4)

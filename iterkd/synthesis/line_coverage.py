"""Line coverage of a candidate's reference by its kept tests, measured inside the sandbox.

The supervisor cannot import the reference (it is model-written, so hostile), so a driver
program runs in the sandbox instead: it writes the reference to `reference.py` in its private
working directory, runs it and then the test imports and kept asserts under
`coverage.Coverage(data_file=None)`, and prints one line, `MARKER {"covered": c, "total": t,
"error": ...}`, that the supervisor reads from the verdict's output (the last such line counts).

Counted: every statement of the reference file, as coverage.py counts them (docstrings are not
statements; `def` and top-level `import` lines are, and run when the module loads). Only an
`if __name__ == "__main__":` block is excluded: the tests never run a script's main block.
coverage.py's default `# pragma: no cover` exclusion is switched off on purpose, so a reference
cannot hide its untested branches behind a pragma.

Trust: the reference runs in the same process as the driver, before the printout, so a hostile
reference can forge it (print a 100% line and exit, patch coverage.py, or leave the driver's
line out). What that buys it is its own acceptance only: its asserts were already checked by the
harness, outside its reach (eval cases), and a forged coverage number concerns no other
candidate. A driver that dies, times out or prints no valid line leaves the coverage unmeasured,
which rejects the candidate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from iterkd.execution import Program, ProgramVerdict, Status, TestSuite

MARKER = "iterkd-coverage:"
MAIN_BLOCK = r"if\s+__name__\s*==\s*['\"]__main__['\"]\s*:"

# The driver runs as the sandboxed program; `_REFERENCE` and `_TESTS` are prepended as literals.
# It keeps its own references to what it needs before any reference code runs, and hides the
# reference's prints (its stdout would push the result line out of the verdict's output head).
_DRIVER = """
import contextlib as _contextlib
import io as _io
import json as _json
import os as _os

import coverage as _coverage

_write, _dumps, _join, _getcwd = _os.write, _json.dumps, _os.path.join, _os.getcwd
_path = _join(_getcwd(), "reference.py")
with open(_path, "w", encoding="utf-8") as _file:
    _file.write(_REFERENCE)
_cov = _coverage.Coverage(data_file=None, config_file=False, include=[_path])
_cov.set_option("report:exclude_lines", [_MAIN_BLOCK])
_error = None
_cov.start()
try:
    with _contextlib.redirect_stdout(_io.StringIO()):
        _namespace = {"__name__": "solution"}
        exec(compile(_REFERENCE, _path, "exec"), _namespace)
        exec(compile(_TESTS, "tests.py", "exec"), _namespace)
except BaseException as _exc:
    _error = type(_exc).__name__
finally:
    _cov.stop()
_analysis = _cov.analysis2(_path)  # (file, statements, excluded, missing, text)
_statements, _missing = _analysis[1], _analysis[3]
_result = {"covered": len(_statements) - len(_missing), "total": len(_statements), "error": _error}
_write(1, ("\\n" + _MARKER + " " + _dumps(_result) + "\\n").encode())
"""


@dataclass(frozen=True)
class Coverage:
    covered: int
    total: int

    @property
    def fraction(self) -> float:
        return self.covered / self.total if self.total else 0.0


def coverage_program(
    program_id: str, solution: str, asserts: Sequence[str], imports: Sequence[str] = ()
) -> Program:
    """The driver measuring `solution`'s coverage by `imports` + `asserts` (run in that order)."""
    tests = "".join(line + "\n" for line in [*imports, *asserts])
    source = (
        f"_REFERENCE = {solution!r}\n_TESTS = {tests!r}\n"
        f"_MARKER = {MARKER!r}\n_MAIN_BLOCK = {MAIN_BLOCK!r}\n{_DRIVER}"
    )
    # the harness needs one test; the driver has done its work by the time it runs
    return Program(id=program_id, source=source, tests=TestSuite(form="block", code="assert True"))


def read_coverage(verdict: ProgramVerdict) -> tuple[Coverage | None, str | None]:
    """(coverage, None) from the driver's last result line, or (None, why it is unmeasured)."""
    if verdict.status is not Status.PASSED:
        message = " ".join((verdict.message or verdict.exception_type or "").split())[:160]
        detail = "timed out" if verdict.status is Status.TIMEOUT else message
        return None, f"the driver ended {verdict.status.value}" + (f": {detail}" if detail else "")
    lines = [line for line in verdict.output.splitlines() if line.startswith(MARKER)]
    if not lines:
        return None, "the driver printed no result line"
    try:
        result = json.loads(lines[-1][len(MARKER) :])
        covered, total, error = result["covered"], result["total"], result["error"]
    except (ValueError, KeyError, TypeError):
        return None, "the driver's result line is not valid"
    if error is not None:
        return None, f"the reference or its tests raised {str(error)[:60]} under coverage"
    if not (type(covered) is int and type(total) is int and 0 <= covered <= total and total):
        return None, f"the driver's counts are not valid ({covered!r} of {total!r})"
    return Coverage(covered, total), None


def coverage_reasons(
    coverage: Coverage | None, unmeasured: str | None, min_coverage: float
) -> tuple[str, ...]:
    """Why a reference's coverage rejects the candidate (empty: it does not)."""
    if coverage is None:
        return (f"coverage_unmeasured: {unmeasured}",)
    if coverage.fraction < min_coverage:
        return (
            f"low_coverage: the kept tests run {coverage.covered} of the reference's "
            f"{coverage.total} statements ({coverage.fraction:.2f} < min {min_coverage})",
        )
    return ()

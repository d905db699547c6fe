"""What goes into the executor (a program and its tests) and what comes out (a verdict)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TestSuite(BaseModel):
    """The tests of one program, in one of the three forms code datasets use.

    - `humaneval`: `code` defines `def check(candidate)`; `entry_point` names the function passed in.
    - `asserts`: MBPP / MultiPL-T style, `asserts` is a list of statements like `assert f(1) == 2`.
    - `block`: `code` is a plain block of assert statements (and helpers) calling the program.
    `imports` and `setup` are extra test code (MBPP's `test_imports` / `test_setup_code`).
    """

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    form: Literal["humaneval", "asserts", "block"]
    code: str | None = None
    asserts: list[str] | None = None
    entry_point: str | None = None
    imports: list[str] = Field(default_factory=list)
    setup: str = ""

    @model_validator(mode="after")
    def _fields_match_form(self) -> TestSuite:
        if self.form == "asserts":
            if self.asserts is None or self.code is not None:
                raise ValueError("form 'asserts' takes `asserts` (a list of strings) and no `code`")
        elif self.code is None or self.asserts is not None:
            raise ValueError(f"form {self.form!r} takes `code` (a string) and no `asserts`")
        if self.form == "humaneval" and not self.entry_point:
            raise ValueError("form 'humaneval' needs `entry_point`")
        return self


class Program(BaseModel):
    """A candidate program with its tests. `source` may be bytes: it is decoded (strict UTF-8)
    when the program is prepared, so a bad encoding becomes this program's verdict, not a crash."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str | bytes
    tests: TestSuite
    language: str = "python"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a test's assertion or compared value was wrong
    ERROR = "error"  # an exception in the program or a test
    TIMEOUT = "timeout"  # wall-clock deadline or CPU limit
    MEMORY = "memory"  # MemoryError under the address-space limit
    OUTPUT_LIMIT = "output_limit"  # stdout/stderr, result channel or file size over the limit
    CRASHED = "crashed"  # died (signal, exit) before every test reported, or broke the protocol
    INVALID = "invalid"  # bad input: encoding, NUL bytes, size, malformed or empty tests


class TestStatus(StrEnum):
    __test__ = False  # not a pytest class
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"  # this test was running when the deadline hit
    NOT_RUN = "not_run"  # no result reached the supervisor


class TestResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False

    index: int
    source: str = Field(description="the test statement, as parsed")
    is_test: bool = Field(description="False for setup statements between asserts")
    checked_by: Literal["supervisor", "sandbox"] = Field(
        description="supervisor: the value was compared outside the sandbox; sandbox: in-process"
    )
    status: TestStatus
    message: str = ""
    exception_type: str | None = None


class ProgramVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: str
    status: Status
    message: str = ""
    exception_type: str | None = None
    tests: list[TestResult] = Field(default_factory=list)
    tests_total: int = 0
    tests_passed: int = 0
    wall_time_s: float | None = None
    cpu_time_s: float | None = None
    peak_memory_mb: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    output: str = ""
    output_bytes: int = 0
    language: str = "python"
    isolation: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

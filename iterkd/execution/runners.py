"""Language runners: how a program of one language becomes a sandbox job, and its report a verdict.

A runner's `prepare` returns the job that crosses into the sandbox, in one of two kinds the
worker knows:
- `python`: run in the forked interpreter by `_harness.py` (no interpreter start per program);
- `exec`: `files` are written into the fresh sandbox directory and `argv` is exec'd there; the
  language's own harness writes the same JSON-lines records to fd 3 (see `_harness.py`).
Both run under the same isolation. What must stay outside (expected values) stays in the
`CompiledTests` that `prepare` returns beside the job, and `interpret` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from iterkd.execution.config import SandboxConfig
from iterkd.execution.models import Program, ProgramVerdict, TestSuite
from iterkd.execution.testforms import CompiledTests, TestFormError, compile_tests
from iterkd.execution.verdicts import build_verdict


class InvalidProgram(ValueError):
    """This program cannot be run as given; the message says what is wrong and where."""


@dataclass
class PreparedJob:
    payload: dict[str, Any]  # goes to the sandbox
    compiled: CompiledTests  # stays in the supervisor


class LanguageRunner(Protocol):
    language: str

    def prepare(self, program: Program, config: SandboxConfig) -> PreparedJob: ...

    def interpret(
        self, program: Program, job: PreparedJob, raw: dict[str, Any], isolation: dict[str, Any]
    ) -> ProgramVerdict: ...


def decode_source(source: str | bytes, max_bytes: int) -> str:
    """Source as text, or InvalidProgram naming the first problem (encoding, NUL, size)."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = source[exc.start : exc.start + 1].hex()
            raise InvalidProgram(
                f"source is not valid UTF-8: byte 0x{bad} at offset {exc.start}"
            ) from None
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidProgram(f"source has an unpaired surrogate at offset {exc.start}") from None
    if size > max_bytes:
        raise InvalidProgram(f"source is {size} bytes, over max_source_bytes={max_bytes}")
    nul = source.find("\x00")
    if nul >= 0:
        raise InvalidProgram(f"source contains a NUL byte at offset {nul}")
    return source


class PythonRunner:
    language = "python"

    def prepare(self, program: Program, config: SandboxConfig) -> PreparedJob:
        source = decode_source(program.source, config.max_source_bytes)
        try:
            compiled = _compile_once(program.tests.model_dump_json())
        except TestFormError as exc:
            raise InvalidProgram(str(exc)) from None
        payload = {"kind": "python", "source": source, "seed": config.seed}
        payload.update(compiled.sandbox_payload())
        return PreparedJob(payload, compiled)

    def interpret(
        self, program: Program, job: PreparedJob, raw: dict[str, Any], isolation: dict[str, Any]
    ) -> ProgramVerdict:
        return build_verdict(program.id, job.compiled, raw, isolation)


@lru_cache(maxsize=4096)
def _compile_once(suite_json: str) -> CompiledTests:
    """The k attempts at a question share its tests: parse them once (read-only afterwards)."""
    return compile_tests(TestSuite.model_validate_json(suite_json))


RUNNERS: dict[str, LanguageRunner] = {"python": PythonRunner()}

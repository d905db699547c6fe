"""Language runners: how a program of one language becomes a sandbox job, and its report a verdict.

A runner's `prepare` returns the job that crosses into the sandbox, in one of two kinds the
worker knows:
- `python`: run in the forked interpreter by `_harness.py` (no interpreter start per program);
- `exec`: `files` are written into the fresh sandbox directory, `build` (a compiler, if any) runs
  and `argv` is exec'd there; the language's own harness writes the same JSON-lines records to
  fd 3 (see `_harness.py`). `ExecRunner` makes these jobs for the languages of `languages/`:
  their tests are Python's, translated (`languages/translation.py`); the sandbox only ever sees
  the calls, and the supervisor compares each returned value, in the language's canonical form.
Both run under the same isolation. What must stay outside (expected values) stays in the
`CompiledTests` that `prepare` returns beside the job, and `interpret` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from iterkd.execution.config import SandboxConfig
from iterkd.execution.languages import LANGUAGES, Language, TranslatedSuite, Untranslatable
from iterkd.execution.languages.translation import translate_suite
from iterkd.execution.models import Program, ProgramVerdict, TestSuite
from iterkd.execution.testforms import Case, CompiledTests, TestFormError, compile_tests
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


class ExecRunner:
    """A language of `languages/`: its interpreter (or compiler) runs in the same sandbox."""

    def __init__(self, language: Language) -> None:
        self.language = language.name
        self.spec = language

    def prepare(self, program: Program, config: SandboxConfig) -> PreparedJob:
        if config.rlimits and config.open_files < self.spec.min_open_files:
            raise InvalidProgram(
                f"{self.spec.title} does not start with sandbox.open_files={config.open_files}: "
                f"it needs at least {self.spec.min_open_files}"
            )
        source = decode_source(program.source, config.max_source_bytes)
        suite = translated(program.tests, self.language)
        cases = [
            Case("eval", c.call, c.source, True, c.expectation, "supervisor") for c in suite.cases
        ]
        compiled = CompiledTests(imports="", setup="", cases=cases, entry_point=suite.entry_point)
        compiled.normalize = self.spec.canonical
        payload = {"kind": "exec", "seed": config.seed, **self.spec.job(source, suite)}
        return PreparedJob(payload, compiled)

    def interpret(
        self, program: Program, job: PreparedJob, raw: dict[str, Any], isolation: dict[str, Any]
    ) -> ProgramVerdict:
        return build_verdict(program.id, job.compiled, raw, isolation)


def translated(tests: TestSuite, language: str) -> TranslatedSuite:
    """The tests in `language`, all of them: a test that does not translate makes the program
    invalid (narrow the suite first, `languages.translation.narrow_suite`), never skipped here."""
    try:
        suite = _translate_once(tests.model_dump_json(), language)
    except Untranslatable as exc:
        raise InvalidProgram(f"tests cannot be run in {language}: {exc}") from None
    if suite.skipped:
        first = suite.skipped[0]
        raise InvalidProgram(
            f"tests cannot be run in {language}: test {first.index} ({first.source}): "
            f"{first.reason}"
        )
    return suite


@lru_cache(maxsize=4096)
def _translate_once(suite_json: str, language: str) -> TranslatedSuite:
    suite = TestSuite.model_validate_json(suite_json)
    return translate_suite(suite, suite.entry_point, LANGUAGES[language])


RUNNERS: dict[str, LanguageRunner] = {
    "python": PythonRunner(),
    **{name: ExecRunner(language) for name, language in LANGUAGES.items()},
}

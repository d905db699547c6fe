"""Samples -> verdicts: every sample's program run against its question's tests in the sandbox,
and the whole batch through ruff and pylint once. Used by the verify, feedback and evaluate
stages; it knows nothing of stages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from iterkd.analysis import AnalysisConfig, analyze_snippets
from iterkd.analysis.luacheck_runner import LintResult, luacheck_snippets
from iterkd.analysis.models import SnippetAnalysis
from iterkd.execution import Executor, ProgramVerdict, SandboxConfig, Status
from iterkd.execution.languages import LANGUAGES
from iterkd.questions import Question
from iterkd.records import FailureKind, SampleRecord, VerdictRecord

_FAILURE_KINDS: dict[Status, FailureKind] = {
    Status.FAILED: "wrong_answer",
    Status.ERROR: "exception",
    Status.TIMEOUT: "timeout",
    Status.MEMORY: "resource",
    Status.OUTPUT_LIMIT: "resource",
    Status.CRASHED: "exception",
    Status.INVALID: "invalid",
}


def verify_samples(
    samples: Sequence[SampleRecord],
    questions: Mapping[str, Question],
    sandbox: SandboxConfig,
    analysis: AnalysisConfig | None,
    language: str = "python",
) -> list[VerdictRecord]:
    """One verdict per sample, in the samples' order. `analysis=None` skips the static view;
    otherwise Python answers get ruff and pylint, and another language's its own linter (the
    caller passes None for a language without one)."""
    runnable = [s for s in samples if s.code.strip()]
    verdicts: dict[str, ProgramVerdict] = {}
    if runnable:
        programs = [questions[s.question_id].to_program(s.code, s.id, language) for s in runnable]
        with Executor(sandbox) as executor:
            verdicts = {v.program_id: v for v in executor.run(programs)}
    if analysis is None:
        return [_record(s, verdicts.get(s.id), None) for s in samples]
    if language != "python":
        lints = lint_snippets(
            language, {s.id: (s.code, questions[s.question_id].entry_point) for s in runnable}
        )
        return [
            _lint_record(_record(s, verdicts.get(s.id), None), lints.get(s.id)) for s in samples
        ]
    analyses = analyze_snippets({s.id: s.code for s in runnable}, analysis)
    return [_record(s, verdicts.get(s.id), analyses.get(s.id)) for s in samples]


def lint_snippets(language: str, snippets: dict[str, tuple[str, str]]) -> dict[str, LintResult]:
    """The language's linter over (code, entry point) by sample id (luacheck for Lua)."""
    linter = LANGUAGES[language].linter
    if linter != "luacheck":
        raise ValueError(f"no linter for {language}")
    return luacheck_snippets(snippets)


def _lint_record(record: VerdictRecord, lint: LintResult | None) -> VerdictRecord:
    if lint is None:
        return record
    return record.model_copy(
        update={
            "lint_score": lint.score,
            "finding_codes": lint.codes,
            "syntax_error": lint.syntax_error,
        }
    )


def _record(
    sample: SampleRecord, verdict: ProgramVerdict | None, analysis: SnippetAnalysis | None
) -> VerdictRecord:
    base = {"sample_id": sample.id, "question_id": sample.question_id}
    base |= {"role": sample.role, "index": sample.index}
    if verdict is None:  # nothing to run: an empty answer (or one skipped as too long)
        return VerdictRecord(
            **base, status="no_code", passed=False, failure_kind="no_code", tests_passed=0,
            tests_total=0, message="the answer holds no code",
        )  # fmt: skip
    return VerdictRecord(
        **base,
        status=verdict.status.value,
        passed=verdict.passed,
        failure_kind=None if verdict.passed else _FAILURE_KINDS[verdict.status],
        tests_passed=verdict.tests_passed,
        tests_total=verdict.tests_total,
        message=_first_failure(verdict),
        ruff_score=analysis.ruff_score if analysis else None,
        pylint_score=analysis.pylint_score if analysis else None,
        syntax_error=analysis.syntax_error if analysis else False,
        finding_codes=sorted({f.code for f in analysis.findings}) if analysis else [],
    )


def _first_failure(verdict: ProgramVerdict) -> str:
    """The first failing test's message (or the program's), cut to one short line. Messages
    that carry timings are not kept: records must not depend on how busy the machine was."""
    if verdict.passed:
        return ""
    if verdict.status is Status.TIMEOUT:
        return "timed out"
    failing = next((t for t in verdict.tests if t.status.value != "passed"), None)
    text = (failing.message or failing.exception_type or "") if failing else verdict.message
    return " ".join(text.split())[:200]

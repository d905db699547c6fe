"""translate: MultiPL-T's step. The teacher translates verified Python solutions into other
languages; a translation is kept only if it passes the question's tests translated into that
language, and one too close to a translation kept before it (MinHash Jaccard of the code) is a
near-duplicate and dropped. Off unless `translate.enabled`.

in:  teacher/questions.jsonl (reference solutions), teacher/samples.jsonl + verify/verdicts.jsonl
     (the teacher's verified Python answers, for a Python run)
out: translations.jsonl (every sampled translation, its verdict, kept or why not: the dataset),
     samples.jsonl + verdicts.jsonl (the kept translations in the run's own language, as teacher
     answers the train stage learns from; empty when the run's language is Python)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from iterkd.codeblocks import extract_code
from iterkd.config import RunConfig
from iterkd.execution import Executor, ProgramVerdict
from iterkd.generation import Message, Prompt, Sample, SamplingParams
from iterkd.localize import (
    PYTHON,
    TRANSLATE_TEMPLATE,
    dropped_summary,
    fence_tags,
    localize_questions,
    translate_text,
)
from iterkd.prompts import PromptSet
from iterkd.questions import Question
from iterkd.records import SampleRecord, VerdictRecord, read_jsonl, write_jsonl
from iterkd.stages.common import StageContext, count_by, generate_once, round_questions
from iterkd.synthesis.minhashing import signatures

OUTPUTS = ("translations.jsonl", "samples.jsonl", "verdicts.jsonl")
Outcome = Literal["kept", "failed", "duplicate", "over_cap", "no_code"]


class TranslationRecord(BaseModel):
    """One sampled translation of one Python solution into one language."""

    model_config = ConfigDict(extra="forbid")

    id: str  # "<question id>/translate-<language>/<solution>/<sample>"
    question_id: str
    language: str
    source: str  # which Python solution: "reference" or a teacher sample id
    code: str
    status: str  # the executor's status, or "no_code"
    tests_passed: int = 0
    tests_total: int = 0
    message: str = ""
    outcome: Outcome
    duplicate_of: str | None = None
    similarity: float | None = None  # MinHash Jaccard to the kept translation it duplicates


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.translate
    if not cfg.enabled:
        _write(ctx, [], [], [])
        return {"enabled": False, "note": "translate is off (translate.enabled: false)"}
    questions = round_questions(ctx)
    sources = _python_solutions(ctx, questions)
    jobs = {lang: localize_questions(questions, lang) for lang in cfg.targets(ctx.cfg.language)}
    prompts = [
        p for lang, (kept, _) in jobs.items() for p in _prompts(kept, sources, lang, ctx.prompts)
    ]
    if not prompts:
        _write(ctx, [], [], [])
        return {
            "enabled": True,
            "languages": _empty_counts(jobs),
            "note": "no question to translate",
        }
    params = SamplingParams(
        n=cfg.n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=ctx.seed
    )
    spec = ctx.cfg.models.teacher
    results, report = generate_once(ctx, spec, "teacher", prompts, params, "translate")
    records = _verified(ctx, jobs, sources, results)
    samples, verdicts = _training_rows(records, ctx.cfg.language)
    _write(ctx, records, samples, verdicts)
    return {"enabled": True, "languages": _counts(jobs, records), "generation": report}


def _write(ctx: StageContext, records: list, samples: list, verdicts: list) -> None:
    for name, rows in zip(OUTPUTS, (records, samples, verdicts), strict=True):
        write_jsonl(ctx.out / name, rows)


# ------------------------------------------------------------------ what is translated
def _python_solutions(ctx: StageContext, questions: Sequence[Question]) -> dict[str, dict]:
    """Per question, up to `solutions_per_question` verified Python programs: the reference
    solution first, then (in a Python run, where the teacher answers in Python) its answers
    that passed, in sample order."""
    cap = ctx.cfg.translate.solutions_per_question
    sources = {q.id: {"reference": q.reference_solution} for q in questions}
    if ctx.cfg.language == PYTHON:
        samples = read_jsonl(ctx.input_dir("teacher") / "samples.jsonl", SampleRecord)
        verdicts = read_jsonl(ctx.input_dir("verify") / "verdicts.jsonl", VerdictRecord)
        passed = {v.sample_id for v in verdicts if v.passed}
        for sample in samples:
            mine = sources.get(sample.question_id)
            if mine is not None and sample.id in passed and sample.code not in mine.values():
                mine[sample.id] = sample.code
    return {qid: dict(list(mine.items())[:cap]) for qid, mine in sources.items()}


def _prompts(
    questions: Sequence[Question], sources: dict[str, dict], language: str, prompts: PromptSet
) -> list:
    return [
        Prompt(
            id=f"{question.id}/translate-{language}/{j}",
            messages=(
                Message(role="user", content=translate_text(question, code, language, prompts)),
            ),
            template_hash=prompts.template_hash(TRANSLATE_TEMPLATE),
        )
        for question in questions
        for j, code in enumerate(sources[question.id].values())
    ]


# ------------------------------------------------------------------ run, keep, dedup
def _verified(
    ctx: StageContext,
    jobs: dict[str, tuple[list[Question], list]],
    sources: dict[str, dict],
    results: dict[str, list[Sample]],
) -> list[TranslationRecord]:
    records = []
    with Executor(ctx.cfg.sandbox) as executor:
        for language, (questions, _) in jobs.items():
            records += _language_records(executor, language, questions, sources, results)
    return _deduplicated(records, ctx.cfg)


def _language_records(
    executor: Executor,
    language: str,
    questions: Sequence[Question],
    sources: dict[str, dict],
    results: dict[str, list[Sample]],
) -> list[TranslationRecord]:
    drafts, programs = [], []
    fences = fence_tags(language)
    for question in questions:
        for j, source in enumerate(sources[question.id]):
            for sample in results[f"{question.id}/translate-{language}/{j}"]:
                code = (
                    extract_code(sample.text, fences) if sample.finish_reason != "skipped" else ""
                )
                rid = f"{question.id}/translate-{language}/{j}/{sample.index}"
                drafts.append((rid, question.id, source, code))
                if code.strip():
                    programs.append(question.to_program(code, rid, language))
    verdicts = {v.program_id: v for v in executor.run(programs)} if programs else {}
    return [_record(language, *draft, verdicts.get(draft[0])) for draft in drafts]


def _record(
    language: str, rid: str, qid: str, source: str, code: str, verdict: ProgramVerdict | None
) -> TranslationRecord:
    base = {"id": rid, "question_id": qid, "language": language, "source": source, "code": code}
    if verdict is None:
        return TranslationRecord(**base, status="no_code", outcome="no_code")
    return TranslationRecord(
        **base,
        status=verdict.status.value,
        tests_passed=verdict.tests_passed,
        tests_total=verdict.tests_total,
        message="" if verdict.passed else " ".join(verdict.message.split())[:200],
        outcome="kept" if verdict.passed else "failed",
    )


def _deduplicated(records: list[TranslationRecord], cfg: RunConfig) -> list:
    """Passing translations in order; one whose MinHash Jaccard to an earlier kept one of the
    same question and language reaches `translate.dedup_threshold` is a duplicate; then the
    per-question cap."""
    threshold = cfg.translate.dedup_threshold
    syn = cfg.synthesize
    passing = [r for r in records if r.outcome == "kept"]
    sigs = signatures([r.code for r in passing], syn.num_perm, syn.shingle_size, syn.shingle)
    kept: dict[tuple[str, str], list[int]] = {}
    for i, record in enumerate(passing):
        group = kept.setdefault((record.question_id, record.language), [])
        best = max(((float(np.mean(sigs[i] == sigs[k])), k) for k in group), default=None)
        if best is not None and best[0] >= threshold:
            record.outcome, record.similarity = "duplicate", round(best[0], 4)
            record.duplicate_of = passing[best[1]].id
        elif len(group) >= cfg.translate.max_per_question:
            record.outcome = "over_cap"
        else:
            group.append(i)
    return records


def _training_rows(
    records: Sequence[TranslationRecord], language: str
) -> tuple[list[SampleRecord], list[VerdictRecord]]:
    """Kept translations in the run's language, as verified teacher answers for `train`."""
    kept = [r for r in records if r.outcome == "kept" and r.language == language]
    samples, verdicts = [], []
    for index, r in enumerate(kept):
        samples.append(
            SampleRecord(
                id=r.id,
                question_id=r.question_id,
                role="teacher",
                index=index,
                text=r.code,
                code=r.code,
                finish_reason="stop",
                prompt_tokens=0,
                completion_tokens=0,
            )
        )
        verdicts.append(
            VerdictRecord(
                sample_id=r.id,
                question_id=r.question_id,
                role="teacher",
                index=index,
                status="passed",
                passed=True,
                tests_passed=r.tests_passed,
                tests_total=r.tests_total,
            )
        )
    return samples, verdicts


# ------------------------------------------------------------------ summary
def _counts(jobs: dict, records: Sequence[TranslationRecord]) -> dict[str, Any]:
    out = _empty_counts(jobs)
    for language, counts in out.items():
        mine = [r for r in records if r.language == language]
        kept = {r.question_id for r in mine if r.outcome == "kept"}
        counts.update(
            translations=len(mine),
            outcomes=count_by(r.outcome for r in mine),
            statuses=count_by(r.status for r in mine),
            questions_translated=len(kept),
        )
    return out


def _empty_counts(jobs: dict) -> dict[str, dict[str, Any]]:
    return {
        lang: {"questions": len(kept), **dropped_summary(dropped)}
        for lang, (kept, dropped) in jobs.items()
    }

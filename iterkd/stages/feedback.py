"""feedback: the round's new student (after this round's train) re-attempts every question of the
pool; its answers are run against the tests, analyzed (ruff, pylint) and, when a judge is
configured, scored with a rubric. The views are fused into one score and a bucket per question
(easy: mastered, medium, hard: failed), which the synthesize stage reads.

in:  teacher/questions.jsonl; the student after this round's train; the previous round's
     feedback/feedback.jsonl (bucket history); this round's and round 0's verify/verdicts.jsonl
     (the student's pass@1 before training, for the summary's `train_pass`)
out: samples.jsonl, verdicts.jsonl, judge.jsonl (one per sample; empty without a judge),
     feedback.jsonl (one FeedbackRecord per question, sorted by question id)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from iterkd.feedback import Evidence, question_feedback, view_means
from iterkd.generation import Sample, SamplingParams
from iterkd.judge import JudgeRecord, judge_prompt, judge_record
from iterkd.metrics import compare_pass_at_k, pass_at_k_with_interval, pass_counts
from iterkd.questions import Question
from iterkd.records import (
    Bucket,
    FeedbackRecord,
    SampleRecord,
    VerdictRecord,
    read_jsonl,
    write_jsonl,
)
from iterkd.stages.common import (
    StageContext,
    analysis_note,
    count_by,
    generate_once,
    round_questions,
    sample_answers,
    student_spec,
    verify_answers,
)

OUTPUTS = ("samples.jsonl", "verdicts.jsonl", "judge.jsonl", "feedback.jsonl")


def run(ctx: StageContext) -> dict[str, Any]:
    questions = round_questions(ctx)
    history = previous_history(ctx)
    if not questions:
        for name in OUTPUTS:
            write_jsonl(ctx.out / name, [])
        return {"questions": 0, "samples": 0, "note": "empty pool: nothing to give feedback on"}
    spec = student_spec(ctx, ctx.round)
    samples, report = sample_answers(ctx, spec, "student", questions, ctx.cfg.student, "feedback")
    by_id = {q.id: q for q in questions}
    ctx.log(f"running {len(samples)} answers of the new student to {len(questions)} questions")
    verdicts = verify_answers(ctx, samples, by_id)
    judgements, judge_report = judge_samples(ctx, by_id, samples)
    records = build_records(questions, verdicts, judgements, ctx, history)
    write_jsonl(ctx.out / "samples.jsonl", samples)
    write_jsonl(ctx.out / "verdicts.jsonl", verdicts)
    write_jsonl(ctx.out / "judge.jsonl", judgements)
    write_jsonl(ctx.out / "feedback.jsonl", records)
    return {
        "questions": len(questions),
        "samples": len(samples),
        "student_adapter": spec.adapter is not None,
        **summarize(records, judgements, judged=ctx.cfg.models.judge is not None),
        "train_pass": train_pass(ctx, verdicts),
        **analysis_note(ctx),
        "generation": report,
        "judge_generation": judge_report,
    }


def previous_history(ctx: StageContext) -> dict[str, list[Bucket]]:
    """Question id -> its bucket history up to the previous round (empty in round 0)."""
    if not ctx.round:
        return {}
    path = ctx.input_dir("feedback", ctx.round - 1) / "feedback.jsonl"
    return {r.question_id: list(r.bucket_history) for r in read_jsonl(path, FeedbackRecord)}


def judge_samples(
    ctx: StageContext, questions: dict[str, Question], samples: Sequence[SampleRecord]
) -> tuple[list[JudgeRecord], dict[str, Any] | None]:
    """One JudgeRecord per sample (none without a judge). Answers without code are not sent:
    there is nothing to score, and the tests view already counts them as failures."""
    spec = ctx.cfg.models.judge
    if spec is None:
        return [], None
    cfg = ctx.cfg.feedback
    params = SamplingParams(
        n=1, temperature=cfg.judge_temperature, max_new_tokens=cfg.judge_max_new_tokens,
        seed=ctx.seed,
    )  # fmt: skip
    language = ctx.cfg.language
    prompts = [
        judge_prompt(questions[s.question_id], s, language, ctx.prompts)
        for s in samples
        if s.code.strip()
    ]
    results, counts = generate_once(ctx, spec, "judge", prompts, params, "judge")
    return [_judged(s, results.get(s.id)) for s in samples], counts


def _judged(sample: SampleRecord, replies: list[Sample] | None) -> JudgeRecord:
    if replies is not None and replies[0].finish_reason != "skipped":
        return judge_record(sample, replies[0].text)
    why = (
        "the answer holds no code" if replies is None else "the prompt exceeds the judge's context"
    )
    return JudgeRecord(
        sample_id=sample.id, question_id=sample.question_id, scores=None, raw="",
        error=f"not judged: {why}", judged=False,
    )  # fmt: skip


def build_records(
    questions: Sequence[Question],
    verdicts: Sequence[VerdictRecord],
    judgements: Sequence[JudgeRecord],
    ctx: StageContext,
    history: dict[str, list[Bucket]],
) -> list[FeedbackRecord]:
    by_question: dict[str, list[VerdictRecord]] = defaultdict(list)
    for verdict in verdicts:
        by_question[verdict.question_id].append(verdict)
    judged: dict[str, list[JudgeRecord]] = defaultdict(list)
    for judgement in judgements:
        judged[judgement.question_id].append(judgement)
    records = [
        question_feedback(
            Evidence(q.id, by_question[q.id], judged[q.id]), ctx.cfg.feedback, history.get(q.id, [])
        )
        for q in questions
    ]
    return sorted(records, key=lambda r: r.question_id)


def summarize(
    records: Sequence[FeedbackRecord], judgements: Sequence[JudgeRecord], judged: bool
) -> dict[str, Any]:
    buckets = {"easy": 0, "medium": 0, "hard": 0} | count_by(r.bucket for r in records)
    failures: dict[str, int] = defaultdict(int)
    for record in records:
        for kind, count in record.failure_kinds.items():
            failures[kind] += count
    out: dict[str, Any] = {
        "buckets": buckets,
        "views": view_means(records),
        "fused_mean": round(sum(r.fused for r in records) / len(records), 6),
        "disagreements": sum(r.disagreement for r in records),
        "failure_kinds": dict(sorted(failures.items())),
        "judge": _judge_summary(judgements) if judged else "absent",
    }
    if not judged:
        out["note"] = "no judge configured: the judge view is absent, its weight spread"
    elif out["judge"]["parsed"] == 0:
        out["note"] = "no judge reply held a valid score: the judge view is missing everywhere"
    return out


def train_pass(ctx: StageContext, verdicts: Sequence[VerdictRecord]) -> dict[str, Any]:
    """pass@1 on the round's own questions before this round's training (the student stage's
    answers, in verify/verdicts.jsonl) and after it (these answers), each with its interval, and
    the paired changes against the round start and against round 0's student stage (the initial
    student) over the questions both hold; None where none is shared."""
    after = pass_counts((v.question_id, v.passed) for v in verdicts)
    before = _student_counts(ctx, ctx.round)
    start = before if ctx.round == 0 else _student_counts(ctx, 0)
    return {
        "questions": len(after),
        "before": pass_at_k_with_interval([before[q] for q in after if q in before], 1),
        "after": pass_at_k_with_interval(list(after.values()), 1),
        "vs_round_start": compare_pass_at_k(before, after, 1),
        "vs_baseline": compare_pass_at_k(start, after, 1),
    }


def _student_counts(ctx: StageContext, round_index: int | None) -> dict[str, tuple[int, int]]:
    verdicts = read_jsonl(ctx.input_dir("verify", round_index) / "verdicts.jsonl", VerdictRecord)
    return pass_counts((v.question_id, v.passed) for v in verdicts if v.role == "student")


def _judge_summary(judgements: Sequence[JudgeRecord]) -> dict[str, Any]:
    asked = [j for j in judgements if j.judged]
    return {
        "asked": len(asked),
        "parsed": sum(j.scores is not None for j in asked),
        "missing": sum(j.scores is None for j in asked),
        "not_judged": len(judgements) - len(asked),  # no code, or a prompt too long
    }

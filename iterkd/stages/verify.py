"""verify: run every teacher and student answer against its tests in the sandbox, analyze them
with ruff and pylint (Python answers; other languages have no static view), and label each
correct or faulty.

in:  teacher/questions.jsonl, teacher/samples.jsonl, student/samples.jsonl
out: verdicts.jsonl (one per sample, teacher's first)
"""

from __future__ import annotations

from typing import Any

from iterkd.records import SampleRecord, VerdictRecord, read_jsonl, write_jsonl
from iterkd.stages.common import (
    StageContext,
    analysis_note,
    count_by,
    round_questions,
    verify_answers,
)


def run(ctx: StageContext) -> dict[str, Any]:
    questions = {q.id: q for q in round_questions(ctx)}
    samples = read_jsonl(ctx.input_dir("teacher") / "samples.jsonl", SampleRecord)
    samples += read_jsonl(ctx.input_dir("student") / "samples.jsonl", SampleRecord)
    ctx.log(f"running {len(samples)} answers to {len(questions)} questions")
    verdicts = verify_answers(ctx, samples, questions)
    write_jsonl(ctx.out / "verdicts.jsonl", verdicts)
    return {"questions": len(questions), **_summary(verdicts), **analysis_note(ctx)}


def _summary(verdicts: list[VerdictRecord]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("teacher", "student"):
        mine = [v for v in verdicts if v.role == role]
        out[role] = {
            "samples": len(mine),
            "passed": sum(v.passed for v in mine),
            "pass_rate": round(sum(v.passed for v in mine) / len(mine), 6) if mine else None,
            "questions_solved": len({v.question_id for v in mine if v.passed}),
            "statuses": count_by(v.status for v in mine),
        }
    correct = {v.question_id for v in verdicts if v.role == "teacher" and v.passed}
    faulty = {v.question_id for v in verdicts if v.role == "student" and not v.passed}
    out["questions_with_pairs"] = len(correct & faulty)
    if not correct:
        out["note"] = "no teacher answer passed its tests: nothing to train on this round"
    return out

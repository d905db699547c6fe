"""student: k attempts per question of the round's pool from the student the round starts with.

in:  teacher/questions.jsonl; the student after the previous round's train stage
out: samples.jsonl
"""

from __future__ import annotations

from typing import Any

from iterkd.records import write_jsonl
from iterkd.stages.common import StageContext, round_questions, sample_answers, student_spec


def run(ctx: StageContext) -> dict[str, Any]:
    questions = round_questions(ctx)
    previous = ctx.round - 1 if ctx.round else None
    spec = student_spec(ctx, previous)
    if not questions:
        write_jsonl(ctx.out / "samples.jsonl", [])
        return {"questions": 0, "samples": 0, "note": "empty pool: nothing to attempt"}
    samples, report = sample_answers(ctx, spec, "student", questions, ctx.cfg.student, "student")
    write_jsonl(ctx.out / "samples.jsonl", samples)
    return {
        "questions": len(questions),
        "samples": len(samples),
        "student_adapter": spec.adapter is not None,
        "generation": report,
    }

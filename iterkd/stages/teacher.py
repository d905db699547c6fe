"""teacher: freeze this round's question pool and sample k answers per question from the teacher.

in:  round 0: the config's `data.train` set; round r: `rounds/<r-1>/synthesize/next_pool.jsonl`
out: questions.jsonl (the pool, read by every later stage of the round), samples.jsonl;
     for a run in another language than Python, language.jsonl: the questions left out (their
     tests do not translate) and those whose tests were narrowed
"""

from __future__ import annotations

from typing import Any

from iterkd.questions import Question, load_source
from iterkd.records import RecordError, read_jsonl, write_jsonl
from iterkd.stages.common import StageContext, StageError, localized, sample_answers


def run(ctx: StageContext) -> dict[str, Any]:
    questions, language_notes = localized(ctx, _pool(ctx), "teacher")
    write_jsonl(ctx.out / "questions.jsonl", questions)
    if not questions:
        write_jsonl(ctx.out / "samples.jsonl", [])
        ctx.log("the pool is empty: nothing to ask the teacher this round")
        note = "empty pool: no question to ask"
        return {"questions": 0, "samples": 0, **language_notes, "note": note}
    samples, report = sample_answers(
        ctx, ctx.cfg.models.teacher, "teacher", questions, ctx.cfg.teacher, "teacher"
    )
    write_jsonl(ctx.out / "samples.jsonl", samples)
    summary = {"questions": len(questions), "samples": len(samples), **language_notes}
    return {**summary, "generation": report}


def _pool(ctx: StageContext) -> list[Question]:
    if ctx.round in (None, 0):
        return load_source(ctx.cfg.data.train)
    path = ctx.input_dir("synthesize", ctx.round - 1) / "next_pool.jsonl"
    try:
        return read_jsonl(path, Question)
    except RecordError as exc:
        raise StageError(str(exc)) from None

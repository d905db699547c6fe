"""evaluate: the student after this round's training (the initial one for `baseline`) on the
held-out set: pass@1 and pass@k with the unbiased estimator, compared with the best so far.

in:  the config's `data.eval` set; the student after train (this round)
out: questions.jsonl, samples.jsonl, verdicts.jsonl
"""

from __future__ import annotations

from typing import Any

from iterkd.config import GenerationConfig
from iterkd.metrics import mean_pass_at_k
from iterkd.questions import load_source
from iterkd.records import read_json, write_jsonl
from iterkd.stages.common import (
    StageContext,
    localized,
    sample_answers,
    student_spec,
    verify_answers,
)


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.evaluate
    questions, language_notes = localized(ctx, load_source(ctx.cfg.data.eval), "evaluate")
    write_jsonl(ctx.out / "questions.jsonl", questions)
    spec = student_spec(ctx, ctx.round)
    gen = GenerationConfig(n=cfg.n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    samples, report = sample_answers(ctx, spec, "student", questions, gen, "eval")
    write_jsonl(ctx.out / "samples.jsonl", samples)
    verdicts = verify_answers(ctx, samples, {q.id: q for q in questions}, analyze=False)
    write_jsonl(ctx.out / "verdicts.jsonl", verdicts)
    counts = [(cfg.n, sum(v.passed for v in verdicts if v.question_id == q.id)) for q in questions]
    metrics = {f"pass@{k}": round(mean_pass_at_k(counts, k), 6) for k in cfg.ks}
    return {
        "questions": len(questions),
        "samples": len(samples),
        "student_adapter": spec.adapter is not None,
        **language_notes,
        **metrics,
        **_compared(ctx, metrics["pass@1"] if 1 in cfg.ks else None),
        "generation": report,
    }


def _compared(ctx: StageContext, pass1: float | None) -> dict[str, Any]:
    """The best pass@1 of the evaluations before this one, and whether this one beats it."""
    if ctx.round is None or pass1 is None:
        return {}
    earlier = [read_json(ctx.input_dir("evaluate", None) / "summary.json")]
    earlier += [read_json(ctx.input_dir("evaluate", r) / "summary.json") for r in range(ctx.round)]
    best = max(s["pass@1"] for s in earlier)
    return {"best_before": best, "improved": pass1 > best}

"""evaluate: the student after this round's training (the initial one for `baseline`) on the
held-out set: pass@k with the unbiased estimator over `n` sampled answers per question and, with
`evaluate.greedy`, pass@1 of one greedy answer; each with a 95 % bootstrap interval over
questions, and each change against the previous evaluation and the baseline with a paired test
over the questions both hold (iterkd.metrics).

in:  the config's `data.eval` set; the student after train (this round); the earlier evaluate
     steps' verdicts (their per-question pass counts)
out: questions.jsonl, samples.jsonl, verdicts.jsonl; with greedy, greedy_samples.jsonl and
     greedy_verdicts.jsonl
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iterkd.config import GenerationConfig, ModelSpec
from iterkd.metrics import compare_pass_at_k, pass_at_k_with_interval, pass_counts
from iterkd.questions import Question, load_source
from iterkd.records import VerdictRecord, read_json, read_jsonl, write_jsonl
from iterkd.stages.common import (
    StageContext,
    localized,
    sample_answers,
    student_spec,
    verify_answers,
)

GREEDY = "greedy_pass@1"
GREEDY_PREFIX = "greedy_"  # greedy_samples.jsonl, greedy_verdicts.jsonl

Counts = dict[str, tuple[int, int]]  # question id -> (answers, passed)


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.evaluate
    questions, language_notes = localized(ctx, load_source(ctx.cfg.data.eval), "evaluate")
    write_jsonl(ctx.out / "questions.jsonl", questions)
    spec = student_spec(ctx, ctx.round)
    mine, reports = answer(ctx, spec, questions)
    metrics = {
        f"pass@{k}": pass_at_k_with_interval(list(mine["sampled"].values()), k) for k in cfg.ks
    }
    if "greedy" in mine:
        metrics[GREEDY] = pass_at_k_with_interval(list(mine["greedy"].values()), 1)
    pass1 = metrics["pass@1"]["value"] if 1 in cfg.ks else None
    return {
        "questions": len(questions),
        "samples": sum(n for n, _ in mine["sampled"].values()),
        "student_adapter": spec.adapter is not None,
        **language_notes,
        **{key: m["value"] for key, m in metrics.items()},  # plain floats: promote reads them
        "intervals": {key: m["ci95"] for key, m in metrics.items()},
        **comparisons(ctx, mine, cfg.ks),
        **compared_with_best(ctx, mine["sampled"], pass1),
        **reports,
    }


def answer(
    ctx: StageContext, spec: ModelSpec, questions: Sequence[Question]
) -> tuple[dict[str, Counts], dict[str, Any]]:
    """The per-question pass counts of the sampled answers ("sampled") and, with
    `evaluate.greedy`, of the greedy ones ("greedy"); and their generation reports."""
    cfg = ctx.cfg.evaluate
    gen = GenerationConfig(n=cfg.n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    counts, report = attempt(ctx, spec, questions, gen, "")
    mine, reports = {"sampled": counts}, {"generation": report}
    if cfg.greedy:
        # temperature 0 is argmax decoding: one answer says all a greedy decoder would say
        greedy = GenerationConfig(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens)
        mine["greedy"], reports["greedy_generation"] = attempt(
            ctx, spec, questions, greedy, GREEDY_PREFIX
        )
    return mine, reports


def attempt(
    ctx: StageContext,
    spec: ModelSpec,
    questions: Sequence[Question],
    gen: GenerationConfig,
    prefix: str,
) -> tuple[Counts, dict[str, Any]]:
    """Answer every question `gen.n` times through the `<prefix>eval` cache, run the answers,
    write `<prefix>samples.jsonl` and `<prefix>verdicts.jsonl`: the per-question pass counts."""
    samples, report = sample_answers(ctx, spec, "student", questions, gen, f"{prefix}eval")
    write_jsonl(ctx.out / f"{prefix}samples.jsonl", samples)
    verdicts = verify_answers(ctx, samples, {q.id: q for q in questions}, analyze=False)
    write_jsonl(ctx.out / f"{prefix}verdicts.jsonl", verdicts)
    return pass_counts((v.question_id, v.passed) for v in verdicts), report


def earlier_counts(folder: Path) -> dict[str, Counts]:
    """The per-question pass counts an earlier evaluation wrote: "sampled" always, "greedy" when
    it answered greedily too (runs from before `evaluate.greedy` have no greedy file)."""
    out = {"sampled": _read_counts(folder / "verdicts.jsonl")}
    greedy = folder / f"{GREEDY_PREFIX}verdicts.jsonl"
    if greedy.is_file():
        out["greedy"] = _read_counts(greedy)
    return out


def _read_counts(path: Path) -> Counts:
    return pass_counts((v.question_id, v.passed) for v in read_jsonl(path, VerdictRecord))


def comparisons(
    ctx: StageContext, mine: dict[str, Counts], ks: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """`vs_previous` (the evaluation just before this one: the baseline for round 0) and
    `vs_baseline`: a paired comparison per metric over the questions both hold."""
    if ctx.round is None:
        return {}
    previous = ctx.round - 1 if ctx.round > 0 else None
    return {
        "vs_previous": versus(earlier_counts(ctx.input_dir("evaluate", previous)), mine, ks),
        "vs_baseline": versus(earlier_counts(ctx.input_dir("evaluate", None)), mine, ks),
    }


def versus(then: dict[str, Counts], now: dict[str, Counts], ks: Sequence[int]) -> dict[str, Any]:
    """Metric -> paired comparison; a metric either side lacks, or on no shared question, is
    left out rather than compared on nothing."""
    pairs = [(f"pass@{k}", "sampled", k) for k in ks] + [(GREEDY, "greedy", 1)]
    out = {}
    for key, kind, k in pairs:
        if kind in then and kind in now:
            comparison = compare_pass_at_k(then[kind], now[kind], k)
            if comparison is not None:
                out[key] = comparison
    return out


def compared_with_best(ctx: StageContext, counts: Counts, pass1: float | None) -> dict[str, Any]:
    """The best pass@1 of the evaluations before this one, and whether this one beats it
    significantly: higher, and the paired test against that evaluation says it is not noise
    (promotion's gate is separate: docs/promotion.md)."""
    if ctx.round is None or pass1 is None:
        return {}
    folders = [ctx.input_dir("evaluate", r) for r in (None, *range(ctx.round))]
    scores = [read_json(folder / "summary.json")["pass@1"] for folder in folders]
    best = max(scores)
    versus_best = compare_pass_at_k(
        earlier_counts(folders[scores.index(best)])["sampled"], counts, 1
    )
    significant = versus_best is not None and versus_best["significant"]
    return {"best_before": best, "improved": pass1 > best and significant}

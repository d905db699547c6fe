"""synthesize: new questions from the teacher, one strategy per feedback bucket, screened hard,
and the next round's pool.

Per bucket, `synthesize.per_bucket[bucket]` parents are drawn from the bucket (seeded; a bucket
with fewer parents cycles through them again, an empty one asks nothing) and the teacher is asked,
each strategy with its own template (`iterkd/synthesis/requests.py`): a harder variant of a
mastered (easy) question by one Evol-Instruct operation chosen from the seed, a same-difficulty
variant of a medium one, or a simpler stepping stone below a failed (hard) one. A parent asked
again with the same prompt takes the next of that prompt's samples, so its answers differ.

Each answer goes through the funnel of `iterkd/synthesis/screening.py`: parsed; validated in the
sandbox (failing asserts dropped, `min_tests`, line coverage of the reference >= `min_coverage`);
not a near-duplicate of a known question (this pool, earlier rounds' pools, this batch's earlier
candidates); not contaminated by the held-out set; inside the batch's perplexity band under
`perplexity_model`; scored >= `quality_bar` by the judge. A rejected candidate is kept with all
its reasons.

in:  teacher/questions.jsonl (the pool), feedback/feedback.jsonl (buckets), earlier rounds'
     teacher/questions.jsonl, the config's `data.eval` set (decontamination)
out: candidates.jsonl (every teacher answer, with what screening measured), accepted.jsonl
     (Questions), rejected.jsonl, next_pool.jsonl (Questions: the next round's teacher stage
     reads it)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iterkd.config import PoolConfig, SynthesisConfig
from iterkd.generation import GenerationReport, Prompt, SamplingParams, generate
from iterkd.generation.factory import open_backend, resolve_model_path
from iterkd.questions import Question, load_source
from iterkd.records import FeedbackRecord, read_jsonl, write_jsonl
from iterkd.stages.common import (
    RUN_DEPENDENT_COUNTS,
    StageContext,
    count_by,
    generate_once,
    progress,
    report_counts,
    round_questions,
)
from iterkd.synthesis import (
    BUCKETS,
    FUNNEL,
    STRATEGIES,
    TEMPLATES,
    Outcome,
    Request,
    plan_requests,
    request_prompt,
    score_log_perplexity,
    screen,
)
from iterkd.synthesis.screening import Judge, Scorer

__all__ = [  # what tests and callers use from the stage
    "FUNNEL", "Request", "generate_texts", "next_pool", "plan_requests", "run", "screen",
    "summarize",
]  # fmt: skip


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.synthesize
    pool = round_questions(ctx)
    feedback = read_jsonl(ctx.input_dir("feedback") / "feedback.jsonl", FeedbackRecord)
    requests = plan_requests(pool, feedback, cfg.per_bucket, ctx.seed, ctx.round or 0)
    texts, report = generate_texts(ctx, requests)
    judge_report: dict[str, Any] = {}
    screened = screen(
        requests,
        {key: text for key, (text, _) in texts.items()},
        cfg=cfg,
        sandbox=ctx.cfg.sandbox,
        known=known_questions(ctx, pool),
        held_out=load_source(ctx.cfg.data.eval),
        perplexity=perplexity_scorer(ctx),
        judge=quality_judge(ctx, judge_report),
        prompts=ctx.prompts,
    )
    outcomes, accepted = screened.outcomes, screened.accepted
    pool_next, composition = next_pool(pool, feedback, accepted, ctx.cfg.pool)
    write_jsonl(
        ctx.out / "candidates.jsonl", [candidate_row(o, texts[o.request.id][1]) for o in outcomes]
    )
    write_jsonl(ctx.out / "accepted.jsonl", accepted)
    write_jsonl(ctx.out / "rejected.jsonl", [rejected_row(o) for o in outcomes if not o.question])
    write_jsonl(ctx.out / "next_pool.jsonl", pool_next)
    summary = summarize(outcomes, feedback, cfg, screened.report)
    if not accepted:
        ctx.log(f"no candidate accepted of {len(requests)} requested")
    return {
        "pool": len(pool), **summary, "next_pool": composition, "generation": report,
        "quality_generation": judge_report or None,
    }  # fmt: skip


# ---------------------------------------------------------------- models
def generate_texts(
    ctx: StageContext, requests: Sequence[Request]
) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """Request id -> (teacher text, finish reason). Requests with the same prompt (a parent asked
    again by the same strategy) are one prompt with n samples, the k-th request taking sample k:
    so they differ, the prompt is prefilled once, and the batch is one generation call per
    distinct n (usually one or two), not one per repetition."""
    if not requests:
        return {}, _empty_report()
    cfg = ctx.cfg.synthesize
    templates = ctx.prompts  # a bad prompt folder fails here, before the teacher is loaded
    groups = same_prompt_groups(
        [(r, request_prompt(r, cfg.min_tests, templates)) for r in requests]
    )
    texts: dict[str, tuple[str, str]] = {}
    totals: dict[str, Any] = {}
    backend = open_backend(ctx.cfg.models.teacher, "teacher")
    try:
        with ctx.cache("synthesis") as cache, progress(len(groups), ctx.stage) as bar:
            for n in sorted({len(ids) for _, ids in groups}):
                asked = [(prompt, ids) for prompt, ids in groups if len(ids) == n]
                params = SamplingParams(
                    n=n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                    seed=ctx.seed,
                )  # fmt: skip
                results, report = generate(
                    backend, [p for p, _ in asked], params, cache, progress=bar
                )
                for prompt, ids in asked:
                    samples = results[prompt.id]
                    texts |= {
                        rid: (s.text, s.finish_reason) for rid, s in zip(ids, samples, strict=True)
                    }
                _add_counts(totals, report_counts(ctx, "synthesis", report))
    finally:
        backend.close()
    return texts, totals


def same_prompt_groups(asked: Sequence[tuple[Request, Prompt]]) -> list[tuple[Prompt, list[str]]]:
    """The distinct prompts (each named by its first request) -> the ids of the requests that
    ask it, in request order."""
    groups: dict[tuple, tuple[Prompt, list[str]]] = {}
    for request, prompt in asked:
        key = (prompt.messages, prompt.text, prompt.template_hash)
        groups.setdefault(key, (prompt, []))[1].append(request.id)
    return list(groups.values())


def _empty_report() -> dict[str, Any]:
    full = GenerationReport().model_dump()
    return {k: v for k, v in full.items() if k not in RUN_DEPENDENT_COUNTS}


def _add_counts(totals: dict[str, Any], counts: Mapping[str, Any]) -> None:
    for key, value in counts.items():
        totals[key] = totals.get(key, 0) + value


def perplexity_scorer(ctx: StageContext) -> Scorer | None:
    """log-perplexities under `perplexity_model` (None: no band); the model loads on first use,
    so a batch with no candidate left to score loads nothing."""
    cfg = ctx.cfg.synthesize
    if cfg.perplexity_model is None:
        return None
    name, batch_size = cfg.perplexity_model, cfg.perplexity_batch_size

    def score(texts: Sequence[str]) -> list[float]:
        return score_log_perplexity(texts, resolve_model_path(name), batch_size=batch_size)

    return score


def quality_judge(ctx: StageContext, report: dict[str, Any]) -> Judge | None:
    """The judge model's replies to question-quality prompts, through this step's cache (None:
    no judge configured); its generation counts go into `report`."""
    spec = ctx.cfg.models.judge
    if spec is None:
        return None
    cfg = ctx.cfg.synthesize
    params = SamplingParams(
        n=1, temperature=cfg.quality_temperature, max_new_tokens=cfg.quality_max_new_tokens,
        seed=ctx.seed,
    )  # fmt: skip

    def judge(prompts: Sequence[Prompt]) -> dict[str, str | None]:
        results, counts = generate_once(ctx, spec, "judge", prompts, params, "quality")
        _add_counts(report, counts)
        return {  # a prompt longer than the judge's context is skipped: None, not a reply
            key: None if samples[0].finish_reason == "skipped" else samples[0].text
            for key, samples in results.items()
        }

    return judge


# ---------------------------------------------------------------- pools
def known_questions(ctx: StageContext, pool: Sequence[Question]) -> list[Question]:
    """This round's pool and every earlier round's: what a new question must not repeat."""
    known = list(pool)
    for index in range(ctx.round or 0):
        known += read_jsonl(ctx.input_dir("teacher", index) / "questions.jsonl", Question)
    return known


def next_pool(
    pool: Sequence[Question],
    feedback: Sequence[FeedbackRecord],
    accepted: Sequence[Question],
    cfg: PoolConfig,
) -> tuple[list[Question], dict[str, Any]]:
    """The accepted questions, then the carried-over ones; cut at `max_size` (new ones first)."""
    buckets = {r.question_id: r.bucket for r in feedback}
    if cfg.carry_over == "all":
        carried = list(pool)
    elif cfg.carry_over == "unsolved":
        carried = [q for q in pool if buckets.get(q.id) != "easy"]
    else:
        carried = []
    combined = [*accepted, *carried]
    kept = combined[: cfg.max_size] if cfg.max_size is not None else combined
    new = min(len(accepted), len(kept))
    composition = {
        "size": len(kept), "new": new, "carried": len(kept) - new,
        "dropped_by_cap": len(combined) - len(kept), "carry_over": cfg.carry_over,
    }  # fmt: skip
    return kept, composition


# ---------------------------------------------------------------- records and summary
def measured(outcome: Outcome) -> dict[str, Any]:
    """What screening measured of a candidate (None: that check did not reach it)."""
    coverage = outcome.coverage
    return {
        "coverage": None if coverage is None else {
            "covered": coverage.covered, "total": coverage.total,
            "fraction": round(coverage.fraction, 4),
        },
        "log_perplexity": outcome.log_perplexity,
        "quality": outcome.quality,
        "notes": list(outcome.notes),
    }  # fmt: skip


def candidate_row(outcome: Outcome, finish_reason: str) -> dict[str, Any]:
    request = outcome.request
    reached = outcome.reached()
    return {
        "id": request.id, "bucket": request.bucket, "strategy": request.strategy,
        "operation": request.operation or None, "parent_id": request.parent.id,
        "cycle": request.cycle, "finish_reason": finish_reason,
        "failed_at": next((step for step in FUNNEL if not reached[step]), None),
        **measured(outcome), "text": outcome.text,
    }  # fmt: skip


def rejected_row(outcome: Outcome) -> dict[str, Any]:
    reached = outcome.reached()
    request = outcome.request
    return {
        "id": request.id, "bucket": request.bucket, "strategy": request.strategy,
        "operation": request.operation or None, "parent_id": request.parent.id,
        "failed_at": next(step for step in FUNNEL if not reached[step]),
        "reasons": outcome.reasons, "tests_dropped": list(outcome.tests_dropped),
        **measured(outcome),
    }  # fmt: skip


def summarize(
    outcomes: Sequence[Outcome],
    feedback: Sequence[FeedbackRecord],
    cfg: SynthesisConfig,
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    reached = [o.reached() for o in outcomes]
    funnel = {step: sum(r[step] for r in reached) for step in FUNNEL}
    out: dict[str, Any] = {
        "funnel": funnel,
        "per_bucket": {b: _bucket_summary(b, outcomes, reached, feedback, cfg) for b in BUCKETS},
        "rejections_by_reason": count_by(  # candidates per reason code (one may have several)
            code for o in outcomes if o.question is None for code in _codes(o.reasons)
        ),
        "tests_dropped_from_accepted": sum(len(o.tests_dropped) for o in outcomes if o.question),
        "notes_on_accepted": count_by(
            note.split(":", 1)[0] for o in outcomes if o.question for note in o.notes
        ),
        **{key: (report or {}).get(key) for key in ("coverage", "perplexity", "quality")},
    }
    if funnel["accepted"] == 0:
        out["note"] = (
            f"no new question accepted ({funnel['requested']} requested, "
            f"{funnel['parsed']} parsed): the next pool holds carried-over questions only"
        )
    return out


def _bucket_summary(
    bucket: str,
    outcomes: Sequence[Outcome],
    reached: Sequence[dict[str, bool]],
    feedback: Sequence[FeedbackRecord],
    cfg: SynthesisConfig,
) -> dict[str, Any]:
    mine = [(o, r) for o, r in zip(outcomes, reached, strict=True) if o.request.bucket == bucket]
    out = {
        "strategy": STRATEGIES[bucket], "template": TEMPLATES[bucket],  # type: ignore[index]
        "quota": cfg.per_bucket.get(bucket, 0),  # type: ignore[call-overload]
        "parents": sum(r.bucket == bucket for r in feedback),
        **{step: sum(r[step] for _, r in mine) for step in FUNNEL},
    }  # fmt: skip
    if bucket == "easy":
        out["operations"] = count_by(o.request.operation for o, _ in mine)
    return out


def _codes(reasons: Sequence[str]) -> list[str]:
    return sorted({reason.split(":", 1)[0] for reason in reasons})

"""synthesize: new questions from the teacher, one strategy per feedback bucket, screened hard,
and the next round's pool.

Per bucket, `synthesize.per_bucket[bucket]` parents are drawn from the bucket (seeded; a bucket
with fewer parents cycles through them again, an empty one asks nothing) and the teacher is asked
(`prompts/synthesize.jinja`) for: a harder variant of a mastered (easy) question (Evol-Instruct
style), a same-difficulty variant of a medium one, or a simpler stepping stone below a failed
(hard) one. A repeated parent is asked with another sampling seed, so its answers differ.

Each answer is parsed (`synthesis/parse.py`), its reference run against its tests in the sandbox
(failing asserts dropped, too few left: rejected), compared with every question known so far
(this pool, earlier rounds' pools, the candidates accepted before it) and with the held-out set
(`synthesis/filters.py`). A rejected candidate is kept with all its reasons.

in:  teacher/questions.jsonl (the pool), feedback/feedback.jsonl (buckets), earlier rounds'
     teacher/questions.jsonl, the config's `data.eval` set (decontamination)
out: candidates.jsonl (every teacher answer), accepted.jsonl (Questions), rejected.jsonl,
     next_pool.jsonl (Questions: the next round's teacher stage reads it)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iterkd.config import PoolConfig, SynthesisConfig
from iterkd.execution import SandboxConfig
from iterkd.generation import GenerationReport, Message, Prompt, SamplingParams, generate
from iterkd.generation.base import derive_seed
from iterkd.generation.factory import open_backend
from iterkd.prompts import render, template_hash
from iterkd.questions import Question
from iterkd.records import Bucket, FeedbackRecord, read_jsonl, write_jsonl
from iterkd.stages.common import (
    RUN_DEPENDENT_COUNTS,
    StageContext,
    count_by,
    load_source,
    progress,
    report_counts,
    round_questions,
)
from iterkd.synthesis import (
    Candidate,
    ContaminationChecker,
    NearDuplicateIndex,
    Reference,
    TestCheck,
    check_references,
    parse_candidate,
    to_question,
)

TEMPLATE = "synthesize"
BUCKETS: tuple[Bucket, ...] = ("easy", "medium", "hard")
STRATEGIES: dict[Bucket, str] = {
    "easy": "evolve_harder",
    "medium": "same_skill_variant",
    "hard": "stepping_stone",
}
FUNNEL: tuple[str, ...] = (
    "requested", "generated", "parsed", "validated", "not_duplicate", "not_contaminated",
    "accepted",
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    """One question asked of the teacher."""

    id: str  # r<round>/<bucket>/<k>: the id the question gets if accepted
    bucket: Bucket
    parent: Question
    cycle: int = 0  # times this parent was asked before in this batch (picks the sampling seed)
    failures: str = ""  # the parent's failure kinds, shown in the stepping-stone prompt

    @property
    def strategy(self) -> str:
        return STRATEGIES[self.bucket]


@dataclass
class Outcome:
    """What became of one request: each screening step's reasons (empty: passed)."""

    request: Request
    text: str
    candidate: Candidate | None = None
    parse_reasons: list[str] = field(default_factory=list)
    test_reasons: list[str] = field(default_factory=list)
    duplicate_reasons: list[str] = field(default_factory=list)
    contamination_reasons: list[str] = field(default_factory=list)
    tests_dropped: tuple[str, ...] = ()
    question: Question | None = None

    def reached(self) -> dict[str, bool]:
        """Funnel step -> reached; each step needs every one before it."""
        steps = [True, bool(self.text.strip()), self.candidate is not None]
        steps += [not self.test_reasons, not self.duplicate_reasons]
        steps += [not self.contamination_reasons, self.question is not None]
        reached, out = True, {}
        for name, ok in zip(FUNNEL, steps, strict=True):
            reached = reached and ok
            out[name] = reached
        return out

    @property
    def reasons(self) -> list[str]:
        return [
            *self.parse_reasons, *self.test_reasons, *self.duplicate_reasons,
            *self.contamination_reasons,
        ]  # fmt: skip


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.synthesize
    pool = round_questions(ctx)
    feedback = read_jsonl(ctx.input_dir("feedback") / "feedback.jsonl", FeedbackRecord)
    requests = plan_requests(pool, feedback, cfg.per_bucket, ctx.seed, ctx.round or 0)
    texts, report = generate_texts(ctx, requests)
    outcomes = screen(
        requests,
        {key: text for key, (text, _) in texts.items()},
        cfg=cfg,
        sandbox=ctx.cfg.sandbox,
        known=known_questions(ctx, pool),
        held_out=load_source(ctx.cfg.data.eval),
    )
    accepted = [o.question for o in outcomes if o.question is not None]
    pool_next, composition = next_pool(pool, feedback, accepted, ctx.cfg.pool)
    write_jsonl(ctx.out / "candidates.jsonl", [candidate_row(r, *texts[r.id]) for r in requests])
    write_jsonl(ctx.out / "accepted.jsonl", accepted)
    write_jsonl(ctx.out / "rejected.jsonl", [rejected_row(o) for o in outcomes if not o.question])
    write_jsonl(ctx.out / "next_pool.jsonl", pool_next)
    summary = summarize(outcomes, feedback, cfg)
    if not accepted:
        ctx.log(f"no candidate accepted of {len(requests)} requested")
    return {"pool": len(pool), **summary, "next_pool": composition, "generation": report}


# ---------------------------------------------------------------- requests
def plan_requests(
    pool: Sequence[Question],
    feedback: Sequence[FeedbackRecord],
    per_bucket: Mapping[str, int],
    seed: int,
    round_index: int,
) -> list[Request]:
    """Quota-many requests per bucket; parents in a seeded order, cycled when too few."""
    by_id = {q.id: q for q in pool}
    records = sorted((r for r in feedback if r.question_id in by_id), key=lambda r: r.question_id)
    requests: list[Request] = []
    for bucket in BUCKETS:
        parents = [(by_id[r.question_id], r) for r in records if r.bucket == bucket]
        random.Random(derive_seed(seed, "parents", bucket)).shuffle(parents)
        quota = per_bucket.get(bucket, 0) if parents else 0
        requests += [_request(round_index, bucket, k, parents) for k in range(quota)]
    return requests


def _request(
    round_index: int, bucket: Bucket, k: int, parents: Sequence[tuple[Question, FeedbackRecord]]
) -> Request:
    parent, record = parents[k % len(parents)]
    return Request(
        id=f"r{round_index:03d}/{bucket}/{k}",
        bucket=bucket,
        parent=parent,
        cycle=k // len(parents),
        failures=", ".join(f"{kind} x{n}" for kind, n in record.failure_kinds.items()),
    )


def request_prompt(request: Request, min_tests: int) -> Prompt:
    content = render(
        TEMPLATE,
        strategy=request.strategy,
        parent_prompt=request.parent.prompt,
        failures=request.failures if request.bucket == "hard" else "",
        min_tests=min_tests,
    )
    return Prompt(
        id=request.id,
        messages=(Message(role="user", content=content),),
        template_hash=template_hash(TEMPLATE),
    )


def generate_texts(
    ctx: StageContext, requests: Sequence[Request]
) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """Request id -> (teacher text, finish reason), one sample each; a parent asked again in
    the batch is asked with another seed (same prompt, same seed: same text)."""
    if not requests:
        return {}, {
            k: v
            for k, v in GenerationReport().model_dump().items()
            if k not in RUN_DEPENDENT_COUNTS
        }
    cfg = ctx.cfg.synthesize
    texts: dict[str, tuple[str, str]] = {}
    totals: dict[str, Any] = {}
    backend = open_backend(ctx.cfg.models.teacher, "teacher")
    try:
        with ctx.cache("synthesis") as cache, progress(len(requests), ctx.stage) as bar:
            for cycle in sorted({r.cycle for r in requests}):
                batch = [r for r in requests if r.cycle == cycle]
                seed = ctx.seed if cycle == 0 else derive_seed(ctx.seed, "cycle", cycle)
                params = SamplingParams(
                    n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=seed
                )
                prompts = [request_prompt(r, cfg.min_tests) for r in batch]
                results, report = generate(backend, prompts, params, cache, progress=bar)
                texts |= {
                    r.id: (results[r.id][0].text, results[r.id][0].finish_reason) for r in batch
                }
                for key, value in report_counts(ctx, "synthesis", report).items():
                    totals[key] = totals.get(key, 0) + value
    finally:
        backend.close()
    return texts, totals


# ---------------------------------------------------------------- screening
def screen(
    requests: Sequence[Request],
    texts: Mapping[str, str],
    *,
    cfg: SynthesisConfig,
    sandbox: SandboxConfig,
    known: Sequence[Question],
    held_out: Sequence[Question],
) -> list[Outcome]:
    """Teacher texts -> outcomes, in request order: parsed, validated in the sandbox, then
    checked for near-duplicates (of `known` and of the candidates accepted before it) and for
    contamination (of `held_out`). Every check runs on every parsed candidate, so a rejected
    one carries all its reasons; only accepted ones join the duplicate index."""
    outcomes = [_parsed(r, texts.get(r.id, "")) for r in requests]
    checks = check_references(
        [_reference(o) for o in outcomes if o.candidate], sandbox, cfg.min_tests
    )
    shape = (cfg.num_perm, cfg.shingle_size, cfg.shingle)
    index = NearDuplicateIndex(cfg.dedup_threshold, *shape)
    for question in known:
        index.add(question.id, question.prompt)
    contamination = ContaminationChecker(held_out, cfg.contamination_threshold, *shape)
    for outcome in outcomes:
        if outcome.candidate is not None:
            _screen_one(
                outcome, outcome.candidate, checks[outcome.request.id], index, contamination
            )
    return outcomes


def _parsed(request: Request, text: str) -> Outcome:
    result = parse_candidate(text)
    return Outcome(request, text, result.candidate, list(result.reasons))


def _reference(outcome: Outcome) -> Reference:
    candidate = outcome.candidate
    assert candidate is not None  # only parsed outcomes get here
    return Reference(
        outcome.request.id, candidate.solution, candidate.entry_point, candidate.asserts,
        candidate.imports,
    )  # fmt: skip


def _screen_one(
    outcome: Outcome,
    candidate: Candidate,
    check: TestCheck,
    index: NearDuplicateIndex,
    contamination: ContaminationChecker,
) -> None:
    outcome.test_reasons = list(check.reasons)
    outcome.tests_dropped = check.dropped
    outcome.duplicate_reasons = [
        f"near_duplicate: {key} (jaccard {j})" for key, j in index.matches(candidate.prompt)
    ]
    outcome.contamination_reasons = contamination.reasons(candidate.prompt, candidate.solution)
    if outcome.reasons:
        return
    request = outcome.request
    outcome.question = to_question(
        candidate, question_id=request.id, parent=request.parent, bucket=request.bucket,
        strategy=request.strategy, asserts=check.kept,
    )  # fmt: skip
    index.add(request.id, candidate.prompt)


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
def candidate_row(request: Request, text: str, finish_reason: str) -> dict[str, Any]:
    return {
        "id": request.id, "bucket": request.bucket, "strategy": request.strategy,
        "parent_id": request.parent.id, "cycle": request.cycle, "finish_reason": finish_reason,
        "text": text,
    }  # fmt: skip


def rejected_row(outcome: Outcome) -> dict[str, Any]:
    reached = outcome.reached()
    failed_at = next(step for step in FUNNEL if not reached[step])
    request = outcome.request
    return {
        "id": request.id, "bucket": request.bucket, "strategy": request.strategy,
        "parent_id": request.parent.id, "failed_at": failed_at,
        "reasons": outcome.reasons,
        "tests_dropped": list(outcome.tests_dropped),
    }  # fmt: skip


def summarize(
    outcomes: Sequence[Outcome], feedback: Sequence[FeedbackRecord], cfg: SynthesisConfig
) -> dict[str, Any]:
    reached = [o.reached() for o in outcomes]
    funnel = {step: sum(r[step] for r in reached) for step in FUNNEL}
    per_bucket = {}
    for bucket in BUCKETS:
        mine = [r for o, r in zip(outcomes, reached, strict=True) if o.request.bucket == bucket]
        per_bucket[bucket] = {
            "strategy": STRATEGIES[bucket],
            "quota": cfg.per_bucket.get(bucket, 0),
            "parents": sum(r.bucket == bucket for r in feedback),
            **{step: sum(r[step] for r in mine) for step in FUNNEL},
        }
    out: dict[str, Any] = {
        "funnel": funnel,
        "per_bucket": per_bucket,
        "rejections_by_reason": count_by(  # candidates per reason code (one may have several)
            code for o in outcomes if o.question is None for code in _codes(o.reasons)
        ),
        "tests_dropped_from_accepted": sum(len(o.tests_dropped) for o in outcomes if o.question),
    }
    if funnel["accepted"] == 0:
        out["note"] = (
            f"no new question accepted ({funnel['requested']} requested, "
            f"{funnel['parsed']} parsed): the next pool holds carried-over questions only"
        )
    return out


def _codes(reasons: Sequence[str]) -> list[str]:
    return sorted({reason.split(":", 1)[0] for reason in reasons})

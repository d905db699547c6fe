"""What the teacher is asked: per feedback bucket, parents drawn from the bucket and one strategy,
each with its own prompt template.

- easy (mastered): `evolve_harder`, `synthesize_harder`: a harder question by one
  Evol-Instruct operation (`OPERATIONS`, one per request, chosen from the seed);
- medium: `same_skill_variant`, `synthesize_variant`: the same skill at the same difficulty;
- hard (failed): `stepping_stone`, `synthesize_stepping_stone`: a simpler question isolating
  the missing sub-skill, shown the parent's failure kinds.

The reply format is shared (`synthesize_format`, rendered and passed in as `reply_format`); a
prompt's `template_hash` is its strategy template's hash, and the rendered text, format
included, is part of the generation cache key too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iterkd.generation import Message, Prompt
from iterkd.generation.base import derive_seed
from iterkd.prompts import DEFAULT_PROMPTS, PromptSet
from iterkd.questions import Question
from iterkd.records import Bucket, FeedbackRecord

BUCKETS: tuple[Bucket, ...] = ("easy", "medium", "hard")
STRATEGIES: dict[Bucket, str] = {
    "easy": "evolve_harder",
    "medium": "same_skill_variant",
    "hard": "stepping_stone",
}
TEMPLATES: dict[Bucket, str] = {
    "easy": "synthesize_harder",
    "medium": "synthesize_variant",
    "hard": "synthesize_stepping_stone",
}
FORMAT_TEMPLATE = "synthesize_format"
# Evol-Instruct's in-depth operations; the wording of each is in synthesize_harder.jinja
OPERATIONS: tuple[str, ...] = (
    "add_constraints",
    "rarer_requirement",
    "more_reasoning",
    "erroneous_code",
    "tighter_complexity",
)


@dataclass(frozen=True)
class Request:
    """One question asked of the teacher."""

    id: str  # r<round>/<bucket>/<k>: the id the question gets if accepted
    bucket: Bucket
    parent: Question
    cycle: int = 0  # times this parent was asked before in this batch (picks the sampling seed)
    failures: str = ""  # the parent's failure kinds, shown in the stepping-stone prompt
    operation: str = ""  # the Evol-Instruct operation of an evolve_harder request

    @property
    def strategy(self) -> str:
        return STRATEGIES[self.bucket]

    @property
    def template(self) -> str:
        return TEMPLATES[self.bucket]

    @property
    def tags(self) -> list[str]:
        """What the question records of how it was asked (its parent's tags come first)."""
        return [self.strategy, *([f"evolve:{self.operation}"] if self.operation else [])]


def choose_operation(seed: int, request_id: str) -> str:
    """The request's Evol-Instruct operation: a function of (seed, request id) only."""
    return OPERATIONS[derive_seed(seed, "operation", request_id) % len(OPERATIONS)]


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
        requests += [_request(round_index, bucket, k, parents, seed) for k in range(quota)]
    return requests


def _request(
    round_index: int,
    bucket: Bucket,
    k: int,
    parents: Sequence[tuple[Question, FeedbackRecord]],
    seed: int,
) -> Request:
    parent, record = parents[k % len(parents)]
    request_id = f"r{round_index:03d}/{bucket}/{k}"
    return Request(
        id=request_id,
        bucket=bucket,
        parent=parent,
        cycle=k // len(parents),
        failures=", ".join(f"{kind} x{n}" for kind, n in record.failure_kinds.items()),
        operation=choose_operation(seed, request_id) if bucket == "easy" else "",
    )


def request_prompt(
    request: Request, min_tests: int, prompts: PromptSet = DEFAULT_PROMPTS
) -> Prompt:
    """The request's prompt, rendered from its strategy's template in the run's `prompts`."""
    if request.bucket == "easy" and request.operation not in OPERATIONS:
        raise ValueError(f"{request.id}: unknown Evol-Instruct operation {request.operation!r}")
    tests = request.parent.tests
    variables: dict[str, object] = {
        "parent_prompt": request.parent.prompt,
        # the parent in the reply format, an example of it (its tests only when they are asserts)
        "parent_tests": "\n".join([*tests.imports, *tests.asserts]) if tests.asserts else "",
        "parent_solution": request.parent.reference_solution,
        "reply_format": prompts.render(FORMAT_TEMPLATE, min_tests=min_tests).strip(),
    }
    if request.bucket == "easy":
        variables["operation"] = request.operation
    elif request.bucket == "hard":
        variables["failures"] = request.failures
    return Prompt(
        id=request.id,
        messages=(Message(role="user", content=prompts.render(request.template, **variables)),),
        template_hash=prompts.template_hash(request.template),
    )

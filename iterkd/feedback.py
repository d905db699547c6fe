"""Multi-view feedback on one question, as pure functions: views -> fused score -> bucket.

Every view has the same signature, `(Evidence) -> float | None`, and lives in `VIEWS` (one dict,
as open-r1 keeps its reward functions), so adding a view is one function and one entry. Each view
is normalised to [0, 1]; None means "not measured" (the analyzer was off, no judge, no judge reply
parsed), never "bad": a missing view's weight is spread over the present ones by renormalising.

- tests:  passed attempts / attempts.
- ruff:   mean ruff_score / 10; an attempt without code counts 0 (it has no quality to show),
          and the view is None when no attempt was scored (ruff disabled).
- pylint: the same with pylint_score.
- lint:   the same with lint_score, another language's linter (luacheck for Lua; docs/languages.md).
- judge:  mean of the parsed overall scores, 1..10 mapped to 0..1; None when none parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from iterkd.config import FeedbackConfig
from iterkd.judge import JudgeRecord, overall_view
from iterkd.records import Bucket, FeedbackRecord, VerdictRecord

DIGITS = 6  # views and fused scores are rounded once, before bucketing, so files read the same


@dataclass(frozen=True)
class Evidence:
    """Everything known about the new student's attempts at one question."""

    question_id: str
    verdicts: Sequence[VerdictRecord]
    judgements: Sequence[JudgeRecord] = field(default_factory=tuple)


View = Callable[[Evidence], float | None]


def tests_view(evidence: Evidence) -> float | None:
    verdicts = evidence.verdicts
    return sum(v.passed for v in verdicts) / len(verdicts) if verdicts else None


def _analyzer_mean(evidence: Evidence, attribute: str) -> float | None:
    scores = [getattr(v, attribute) for v in evidence.verdicts]
    if all(score is None for score in scores):
        return None
    counted = [
        0.0 if v.status == "no_code" else score / 10.0
        for v, score in zip(evidence.verdicts, scores, strict=True)
        if score is not None or v.status == "no_code"
    ]
    return sum(counted) / len(counted)


def ruff_view(evidence: Evidence) -> float | None:
    return _analyzer_mean(evidence, "ruff_score")


def pylint_view(evidence: Evidence) -> float | None:
    return _analyzer_mean(evidence, "pylint_score")


def lint_view(evidence: Evidence) -> float | None:
    return _analyzer_mean(evidence, "lint_score")


def judge_view(evidence: Evidence) -> float | None:
    parsed = [overall_view(j.scores.overall) for j in evidence.judgements if j.scores is not None]
    return sum(parsed) / len(parsed) if parsed else None


VIEWS: dict[str, View] = {
    "tests": tests_view,
    "ruff": ruff_view,
    "pylint": pylint_view,
    "lint": lint_view,
    "judge": judge_view,
}


def compute_views(evidence: Evidence) -> dict[str, float | None]:
    return {
        name: None if (value := view(evidence)) is None else round(value, DIGITS)
        for name, view in VIEWS.items()
    }


def fuse(views: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """The weighted mean of the present views; absent views' weights are spread pro rata."""
    present = {name: value for name, value in views.items() if value is not None}
    total = sum(weights.get(name, 0.0) for name in present)
    if total <= 0:
        raise ValueError(f"no weighted view is present (views: {dict(views)})")
    return sum(weights.get(name, 0.0) * value for name, value in present.items()) / total


def bucket_of(fused: float, easy_at: float, hard_below: float) -> Bucket:
    if fused >= easy_at:
        return "easy"
    if fused < hard_below:
        return "hard"
    return "medium"


def disagrees(views: Mapping[str, float | None], high: float = 0.7, low: float = 0.3) -> bool:
    """The judge and the tests contradict each other: one high while the other is low."""
    judge, tests = views.get("judge"), views.get("tests")
    if judge is None or tests is None:
        return False
    return (judge >= high and tests <= low) or (judge <= low and tests >= high)


def failure_counts(verdicts: Sequence[VerdictRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict in verdicts:
        if verdict.failure_kind is not None:
            counts[verdict.failure_kind] = counts.get(verdict.failure_kind, 0) + 1
    return dict(sorted(counts.items()))


def question_feedback(
    evidence: Evidence, cfg: FeedbackConfig, previous_history: Sequence[Bucket] = ()
) -> FeedbackRecord:
    """One question's record: views, fused score, bucket and the bucket history so far."""
    views = compute_views(evidence)
    fused = round(fuse(views, cfg.weights), DIGITS)
    bucket = bucket_of(fused, cfg.easy_at, cfg.hard_below)
    return FeedbackRecord(
        question_id=evidence.question_id,
        attempts=len(evidence.verdicts),
        passed=sum(v.passed for v in evidence.verdicts),
        views=views,
        fused=fused,
        bucket=bucket,
        bucket_history=[*previous_history, bucket],
        failure_kinds=failure_counts(evidence.verdicts),
        disagreement=disagrees(views, cfg.disagreement_high, cfg.disagreement_low),
        judge_raw=[j.raw for j in evidence.judgements if j.judged and j.scores is None],
    )


def view_means(records: Sequence[FeedbackRecord]) -> dict[str, float | None]:
    """Per view, the mean over the questions where it is present (None where it never is)."""
    out: dict[str, float | None] = {}
    for name in VIEWS:
        values = [v for r in records if (v := r.views.get(name)) is not None]
        out[name] = round(sum(values) / len(values), DIGITS) if values else None
    return out

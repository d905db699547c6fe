"""Feedback views, fusion and buckets, checked against values computed by hand."""

from __future__ import annotations

import pytest

from iterkd.config import FeedbackConfig
from iterkd.feedback import (
    VIEWS,
    Evidence,
    bucket_of,
    compute_views,
    disagrees,
    fuse,
    question_feedback,
    view_means,
)
from iterkd.judge import JudgeRecord, JudgeScores
from iterkd.records import VerdictRecord

WEIGHTS = {"tests": 0.7, "ruff": 0.1, "pylint": 0.1, "judge": 0.1}


def verdict(
    index: int, passed: bool, ruff: float | None, pylint: float | None, **kw
) -> VerdictRecord:
    return VerdictRecord(
        sample_id=f"q/student/{index}", question_id="q", role="student", index=index,
        status="passed" if passed else kw.pop("status", "failed"), passed=passed,
        failure_kind=None if passed else kw.pop("failure_kind", "wrong_answer"), tests_passed=0,
        tests_total=3, ruff_score=ruff, pylint_score=pylint, **kw,
    )  # fmt: skip


def judged(index: int, overall: float | None, raw: str = "") -> JudgeRecord:
    scores = JudgeScores(overall=overall) if overall is not None else None
    return JudgeRecord(sample_id=f"q/student/{index}", question_id="q", scores=scores, raw=raw)


def no_code(index: int) -> VerdictRecord:
    return VerdictRecord(
        sample_id=f"q/student/{index}", question_id="q", role="student", index=index,
        status="no_code", passed=False, failure_kind="no_code", tests_passed=0, tests_total=0,
    )  # fmt: skip


def test_every_view_has_one_signature_in_one_dict() -> None:
    assert list(VIEWS) == ["tests", "ruff", "pylint", "lint", "judge"]
    evidence = Evidence("q", [verdict(0, True, 10.0, 5.0)])
    assert all(view(evidence) is None or 0.0 <= view(evidence) <= 1.0 for view in VIEWS.values())


def test_views_by_hand() -> None:
    evidence = Evidence(
        "q",
        [
            verdict(0, True, 9.0, 8.0),
            verdict(1, False, 7.0, 4.0),
            verdict(2, True, 8.0, 6.0),
            verdict(3, False, 10.0, 2.0),
        ],
        [judged(0, 10), judged(1, 1), judged(2, None, "??"), judged(3, 5.5)],
    )
    views = compute_views(evidence)
    assert views["tests"] == 0.5  # 2 of 4
    assert views["ruff"] == pytest.approx(0.85)  # (9 + 7 + 8 + 10) / 4 / 10
    assert views["pylint"] == pytest.approx(0.5)  # (8 + 4 + 6 + 2) / 4 / 10
    assert views["judge"] == pytest.approx(0.5)  # (1.0 + 0.0 + 0.5) / 3; the unparsed one left out


def test_attempts_without_code_count_zero_and_a_disabled_analyzer_is_missing() -> None:
    views = compute_views(Evidence("q", [verdict(0, False, 8.0, None), no_code(1)]))
    assert views["ruff"] == pytest.approx(0.4)  # (0.8 + 0) / 2
    assert views["pylint"] is None  # pylint off: not measured, not zero
    assert views["judge"] is None  # no judgement at all


def test_fusion_with_every_view() -> None:
    views = {"tests": 0.5, "ruff": 0.8, "pylint": 0.6, "judge": 1.0}
    assert fuse(views, WEIGHTS) == pytest.approx(0.35 + 0.08 + 0.06 + 0.1)


def test_a_missing_views_weight_is_spread_over_the_others() -> None:
    views = {"tests": 0.5, "ruff": 0.8, "pylint": 0.6, "judge": None}
    assert fuse(views, WEIGHTS) == pytest.approx((0.35 + 0.08 + 0.06) / 0.9)  # 0.544444
    only_tests = {"tests": 0.25, "ruff": None, "pylint": None, "judge": None}
    assert fuse(only_tests, WEIGHTS) == pytest.approx(0.25)


def test_fusion_needs_one_weighted_view() -> None:
    with pytest.raises(ValueError, match="no weighted view"):
        fuse({"tests": None, "judge": 0.5}, {"tests": 1.0, "judge": 0.0})


@pytest.mark.parametrize(
    ("fused", "bucket"),
    [
        (1.0, "easy"),
        (0.75, "easy"),
        (0.7499, "medium"),
        (0.25, "medium"),
        (0.2499, "hard"),
        (0.0, "hard"),
    ],
)
def test_bucket_thresholds(fused: float, bucket: str) -> None:
    assert bucket_of(fused, easy_at=0.75, hard_below=0.25) == bucket


def test_disagreement_flag() -> None:
    assert disagrees({"tests": 0.25, "judge": 0.7})
    assert disagrees({"tests": 0.75, "judge": 0.3})
    assert not disagrees({"tests": 0.5, "judge": 0.9})
    assert not disagrees({"tests": 0.0, "judge": None})


def test_question_record_with_history() -> None:
    evidence = Evidence(
        "q",
        [
            verdict(0, True, 10.0, 10.0),
            verdict(1, True, 10.0, 10.0),
            verdict(2, False, 10.0, 10.0, status="error", failure_kind="exception"),
            verdict(3, True, 10.0, 10.0),
        ],
        [judged(0, 1), judged(1, None, "no idea"), judged(2, 1), judged(3, 1)],
    )
    record = question_feedback(evidence, FeedbackConfig(), ["hard", "medium"])
    # views: tests 0.75, ruff 1, pylint 1, judge 0 -> 0.525 + 0.1 + 0.1 + 0 = 0.725
    assert record.fused == pytest.approx(0.725) and record.bucket == "medium"
    assert record.bucket_history == ["hard", "medium", "medium"]
    assert record.attempts == 4 and record.passed == 3
    assert record.failure_kinds == {"exception": 1}
    assert record.disagreement  # judge 0.0 while tests 0.75
    assert record.judge_raw == ["no idea"]


def test_first_round_history_is_this_bucket_only() -> None:
    record = question_feedback(Evidence("q", [verdict(0, False, 0.0, 0.0)]), FeedbackConfig())
    assert record.bucket == "hard" and record.bucket_history == ["hard"]
    assert record.failure_kinds == {"wrong_answer": 1}


def test_weights_from_the_config_are_used() -> None:
    cfg = FeedbackConfig(weights={"tests": 0.0, "ruff": 1.0, "pylint": 0.0, "judge": 0.0})
    record = question_feedback(Evidence("q", [verdict(0, False, 9.0, 0.0)]), cfg)
    assert record.fused == pytest.approx(0.9) and record.bucket == "easy"


def test_view_means_skip_missing_views() -> None:
    a = question_feedback(Evidence("q", [verdict(0, True, 10.0, None)]), FeedbackConfig())
    b = question_feedback(Evidence("q", [verdict(0, False, 0.0, None)]), FeedbackConfig())
    assert view_means([a, b]) == {
        "tests": 0.5, "ruff": 0.5, "pylint": None, "lint": None, "judge": None
    }  # fmt: skip


def test_another_languages_linter_is_the_lint_view() -> None:
    lua = [
        verdict(0, True, None, None, lint_score=8.0),
        verdict(1, False, None, None, lint_score=4.0),
    ]
    views = compute_views(Evidence("q", lua))
    assert views["lint"] == 0.6 and views["ruff"] is None and views["pylint"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {"easy_at": 0.2, "hard_below": 0.5},
        {"weights": {"tests": -1.0}},
        {"weights": {"tests": 0.0, "ruff": 0.0, "pylint": 0.0, "judge": 0.0}},
        {"disagreement_low": 0.8, "disagreement_high": 0.5},
    ],
)
def test_config_refuses_inconsistent_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        FeedbackConfig(**bad)

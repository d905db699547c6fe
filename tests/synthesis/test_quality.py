"""The judge's question-quality view: crafted replies above and below the bar, and unparseable
ones under both policies (recorded, never coerced to a number)."""

from __future__ import annotations

import pytest

from iterkd.prompts import template_hash
from iterkd.synthesis import judge_quality, quality_prompt


@pytest.mark.parametrize(
    ("reply", "overall"),
    [
        ('{"clarity": 8, "tests": 7, "usefulness": 7, "overall": 7}', 7.0),
        ('Here you go:\n```json\n{"overall": 6}\n```', 6.0),  # at the bar: kept
        ("Clarity is fine.\nOverall: 9/10", 9.0),
    ],
)
def test_at_or_above_the_bar_is_kept(reply: str, overall: float) -> None:
    for policy in ("keep", "reject"):
        verdict = judge_quality(reply, bar=6.0, missing=policy)  # type: ignore[arg-type]
        assert (verdict.overall, verdict.reasons, verdict.notes) == (overall, (), ())


def test_below_the_bar_is_rejected() -> None:
    verdict = judge_quality('{"clarity": 2, "tests": 3, "overall": 4}', bar=6.0, missing="keep")
    assert verdict.overall == 4.0
    assert verdict.reasons == ("low_quality: overall 4 < quality_bar 6",)
    verdict = judge_quality("Score: 5.5", bar=6.0, missing="keep")
    assert verdict.reasons == ("low_quality: overall 5.5 < quality_bar 6",)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("This is a great exercise.", "no score found"),
        ('{"overall": 85}', "outside 1-10"),
        ("Overall: 8/100", "scale of 100"),
        ('{"overall": "high"}', "not a number"),
        (None, "not judged"),  # the prompt did not fit the judge's context
    ],
)
def test_an_unparseable_reply_follows_the_policy(reply: str | None, why: str) -> None:
    kept = judge_quality(reply, bar=6.0, missing="keep")
    assert kept.overall is None and kept.reasons == () and why in (kept.error or "")
    assert len(kept.notes) == 1 and kept.notes[0].startswith("quality_missing_kept: ")
    assert why in kept.notes[0]
    rejected = judge_quality(reply, bar=6.0, missing="reject")
    assert rejected.overall is None and rejected.notes == ()
    assert len(rejected.reasons) == 1 and rejected.reasons[0].startswith("quality_missing: ")
    assert why in rejected.reasons[0]


def test_the_prompt_shows_question_tests_and_solution_and_asks_for_one_score_line() -> None:
    prompt = quality_prompt(
        "r000/easy/0",
        'def f(x: int) -> int:\n    """Double x."""\n',
        ["assert f(2) == 4", "assert f(0) == 0"],
        ["import math"],
        "def f(x: int) -> int:\n    return 2 * x\n",
    )
    assert prompt.id == "r000/easy/0" and prompt.template_hash == template_hash(
        "synthesize_quality"
    )
    assert prompt.messages is not None
    content = prompt.messages[0].content
    assert '"""Double x."""' in content and "return 2 * x" in content
    assert "import math\nassert f(2) == 4\nassert f(0) == 0" in content
    for word in ("clarity", "tests", "usefulness"):
        assert word in content
    assert content.rstrip().endswith("Score: N")

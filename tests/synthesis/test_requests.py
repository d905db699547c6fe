"""What the teacher is asked: one template per strategy, the shared reply format, the
Evol-Instruct operation chosen from the seed, and the template hash as the cache key."""

from __future__ import annotations

from collections import Counter

import pytest

from iterkd.prompts import render, template_hash
from iterkd.questions import load_bundled
from iterkd.records import Bucket, FeedbackRecord
from iterkd.synthesis import (
    OPERATIONS,
    STRATEGIES,
    TEMPLATES,
    Request,
    choose_operation,
    plan_requests,
    request_prompt,
)

SEED = load_bundled("seed")
PARENT = SEED[0]
FORMAT_LINES = ("### Question", "### Tests", "### Solution", "at least 3 tests")


def request(bucket: Bucket, operation: str = "", failures: str = "") -> Request:
    return Request(
        id=f"r000/{bucket}/0", bucket=bucket, parent=PARENT, operation=operation, failures=failures
    )


def content(req: Request) -> str:
    prompt = request_prompt(req, min_tests=3)
    assert prompt.messages is not None
    return prompt.messages[0].content


@pytest.mark.parametrize("bucket", ["easy", "medium", "hard"])
def test_each_strategy_renders_its_own_template_with_the_shared_format(bucket: Bucket) -> None:
    req = request(bucket, operation=OPERATIONS[0] if bucket == "easy" else "")
    prompt = request_prompt(req, min_tests=3)
    assert prompt.template_hash == template_hash(TEMPLATES[bucket])  # the cache key's template
    text = content(req)
    assert PARENT.prompt.rstrip() in text
    assert all(line in text for line in FORMAT_LINES)
    assert "{{" not in text and "{%" not in text
    assert req.strategy == STRATEGIES[bucket]


def test_the_template_hash_differs_per_strategy() -> None:
    hashes = {request_prompt(request(b, OPERATIONS[0] if b == "easy" else ""), 2).template_hash
              for b in ("easy", "medium", "hard")}  # fmt: skip
    assert len(hashes) == 3
    assert template_hash("synthesize_format") not in hashes


def test_strategies_ask_for_different_things() -> None:
    harder = content(request("easy", "tighter_complexity"))
    variant = content(request("medium"))
    stone = content(request("hard", failures="wrong_answer x3, timeout x1"))
    assert "HARDER" in harder and "complexity" in harder
    assert "SAME difficulty" in variant and "SIMPLER" not in variant
    assert "SIMPLER" in stone and "wrong_answer x3, timeout x1" in stone
    assert "ended in" not in content(request("hard"))  # no failures: no failure line


def test_each_operation_has_its_own_instruction() -> None:
    texts = {op: content(request("easy", op)) for op in OPERATIONS}
    assert len(set(texts.values())) == len(OPERATIONS)
    assert "erroneous" in texts["erroneous_code"].lower() or "WRONG" in texts["erroneous_code"]
    with pytest.raises(ValueError, match="operation"):
        request_prompt(request("easy", "not_an_operation"), 2)


def test_the_operation_is_chosen_from_the_seed() -> None:
    ids = [f"r001/easy/{k}" for k in range(60)]
    first = [choose_operation(7, i) for i in ids]
    assert first == [choose_operation(7, i) for i in ids]  # a function of (seed, id) only
    assert first != [choose_operation(8, i) for i in ids]  # another seed, other choices
    assert set(Counter(first)) == set(OPERATIONS)  # every operation is drawn


def test_planned_requests_carry_their_operation_and_tags() -> None:
    feedback = [
        FeedbackRecord(
            question_id=q.id, attempts=2, passed=2, views={"tests": 1.0}, fused=1.0, bucket=b,
            bucket_history=[b], failure_kinds={},
        )
        for q, b in ((SEED[0], "easy"), (SEED[1], "medium"))
    ]  # fmt: skip
    requests = plan_requests(SEED[:2], feedback, {"easy": 3, "medium": 1}, seed=5, round_index=1)
    easy = [r for r in requests if r.bucket == "easy"]
    assert [r.operation for r in easy] == [choose_operation(5, r.id) for r in easy]
    assert easy[0].tags == ["evolve_harder", f"evolve:{easy[0].operation}"]
    medium = next(r for r in requests if r.bucket == "medium")
    assert medium.operation == "" and medium.tags == ["same_skill_variant"]


def test_the_format_template_renders_alone() -> None:
    text = render("synthesize_format", min_tests=4)
    assert "at least 4 tests" in text and text.lstrip().startswith("Reply with the new exercise")


@pytest.mark.parametrize("bucket", ["easy", "medium", "hard"])
def test_the_parent_is_shown_in_the_reply_format(bucket: Bucket) -> None:
    """An example of the format filled in: the parent's question, asserts and solution (a
    copy of it is dropped downstream as a near-duplicate of the pool)."""
    text = content(request(bucket, operation=OPERATIONS[0] if bucket == "easy" else ""))
    example = text.split("Reply with the new exercise")[0]
    assert example.index("### Question") < example.index("### Tests")
    assert example.index("### Tests") < example.index("### Solution")
    assert "\n".join(PARENT.tests.asserts or []) in example
    assert PARENT.reference_solution.rstrip() in example


def test_a_parent_whose_tests_are_code_is_shown_without_tests() -> None:
    suite = {"form": "humaneval", "code": "def check(candidate):\n    pass\n",
             "entry_point": PARENT.entry_point}  # fmt: skip
    parent = PARENT.model_copy(update={"tests": PARENT.tests.model_validate(suite)})
    req = Request(id="r000/medium/0", bucket="medium", parent=parent)
    example = content(req).split("Reply with the new exercise")[0]
    assert "### Tests" not in example and "check(candidate)" not in example
    assert PARENT.reference_solution.rstrip() in example

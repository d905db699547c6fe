"""The synthesize stage: the real tiny teacher (an honest empty funnel), and the screening path
end to end on crafted teacher texts (parse -> sandbox -> dedup -> decontamination -> pool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iterkd.config import PoolConfig, RunConfig, SynthesisConfig, load_config
from iterkd.execution import SandboxConfig
from iterkd.questions import Question, load_bundled
from iterkd.records import Bucket, FeedbackRecord, read_jsonl, write_json, write_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from iterkd.stages import synthesize as stage
from iterkd.stages.synthesize import FUNNEL, Request, next_pool, plan_requests, screen

SEED = load_bundled("seed")
HELD_OUT = load_bundled("heldout")
POOL = SEED[:3]  # sum_of_evens, count_capitals, ...
BUCKETS: dict[str, Bucket] = {POOL[0].id: "easy", POOL[1].id: "medium", POOL[2].id: "hard"}
SANDBOX = SandboxConfig(workers=2, timeout_s=10.0)


def feedback_for(buckets: dict[str, Bucket]) -> list[FeedbackRecord]:
    fused = {"easy": 1.0, "medium": 0.5, "hard": 0.0}
    return [
        FeedbackRecord(
            question_id=qid, attempts=2, passed=int(2 * fused[b]), views={"tests": fused[b]},
            fused=fused[b], bucket=b, bucket_history=[b],
            failure_kinds={} if b == "easy" else {"wrong_answer": 1},
        )
        for qid, b in buckets.items()
    ]  # fmt: skip


def new_run(path: Path, overrides: list[str]) -> tuple[RunDir, RunConfig]:
    cfg = load_config(None, overrides)
    run = RunDir.create(path, cfg)
    for stage_name, summary, files in (
        ("teacher", {"questions": 3}, {"questions": POOL, "samples": []}),
        ("feedback", {"questions": 3}, {"feedback": feedback_for(BUCKETS)}),
    ):
        folder = run.stage_dir(0, stage_name)
        folder.mkdir(parents=True)
        for name, records in files.items():
            write_jsonl(folder / f"{name}.jsonl", records)
        write_json(folder / "summary.json", summary)
    return run, cfg


def reply(name: str, doc: str, tests: list[str], body: str) -> str:
    question = f'def {name}(text: str) -> int:\n    """{doc}"""\n'
    solution = f"def {name}(text: str) -> int:\n    {body}\n"
    return (
        f"### Question\n```python\n{question}```\n\n### Tests\n```python\n"
        + "".join(t + "\n" for t in tests)
        + f"```\n\n### Solution\n```python\n{solution}```\n"
    )


VOWELS = reply(
    "count_vowels",
    "Count the vowels (a, e, i, o, u, in any case) of text.",
    [
        "assert count_vowels('Hello') == 2",
        "assert count_vowels('') == 0",
        "assert count_vowels('AEIOU xyz') == 5",
        "assert count_vowels('sky') == 1",
    ],
    "return sum(ch in 'aeiou' for ch in text.lower())",
)  # the last assert is wrong ('sky' has none): dropped, the rest kept
DIGITS = reply(
    "count_digits",
    "Return how many characters of text are decimal digits, counting each one.",
    ["assert count_digits('a1b22') == 3", "assert count_digits('') == 0"],
    "return sum(ch.isdigit() for ch in text)",
)
TOO_FEW = reply(
    "longest_word_length",
    "Length of the longest whitespace-separated word of text, 0 for none at all.",
    [
        "assert longest_word_length('a bcd ef') == 3",
        "assert longest_word_length('') == 1",
        "assert longest_word_length('x') == 2",
    ],
    "return max((len(w) for w in text.split()), default=0)",
)
CONTAMINATED = (  # heldout/000's own prompt and solution: contaminated, exact and near
    f"### Question\n```python\n{HELD_OUT[0].prompt}```\n### Tests\n```python\n"
    + "\n".join(HELD_OUT[0].tests.asserts or [])
    + f"\n```\n### Solution\n```python\n{HELD_OUT[0].reference_solution}```\n"
)
POOL_COPY = (  # the pool's sum_of_evens under another name
    "### Question\n```python\n" + POOL[0].prompt.replace("sum_of_evens", "sum_evens") + "```\n"
    "### Tests\n```python\nassert sum_evens([1, 2, 3, 4]) == 6\nassert sum_evens([]) == 0\n```\n"
    "### Solution\n```python\ndef sum_evens(nums):\n"
    "    return sum(n for n in nums if n % 2 == 0)\n```\n"
)


def crafted_requests() -> tuple[list[Request], dict[str, str]]:
    texts = {
        "r000/easy/0": VOWELS,
        "r000/easy/1": VOWELS.replace("Count the vowels", "Count all the vowels"),  # batch dup
        "r000/medium/0": DIGITS,
        "r000/medium/1": POOL_COPY,
        "r000/hard/0": TOO_FEW,
        "r000/hard/1": CONTAMINATED,
        "r000/hard/2": "I cannot think of an exercise.",
        "r000/hard/3": "",
    }
    parents = {"easy": POOL[0], "medium": POOL[1], "hard": POOL[2]}
    requests = [
        Request(id=key, bucket=key.split("/")[1], parent=parents[key.split("/")[1]])
        for key in texts
    ]  # type: ignore[arg-type]
    return requests, texts


@pytest.fixture(scope="module")
def screened() -> dict[str, Any]:
    requests, texts = crafted_requests()
    outcomes = screen(
        requests, texts, cfg=SynthesisConfig(), sandbox=SANDBOX, known=POOL, held_out=HELD_OUT
    )
    return {o.request.id: o for o in outcomes}


def codes(outcome: Any) -> list[str]:
    return sorted({reason.split(":")[0] for reason in outcome.reasons})


def test_good_candidates_are_accepted_with_their_passing_tests(screened: dict[str, Any]) -> None:
    vowels = screened["r000/easy/0"].question
    assert vowels is not None and vowels.id == "r000/easy/0"
    assert vowels.tests.asserts == [
        "assert count_vowels('Hello') == 2",
        "assert count_vowels('') == 0",
        "assert count_vowels('AEIOU xyz') == 5",
    ]
    assert screened["r000/easy/0"].tests_dropped == (
        "assert count_vowels('sky') == 1  # failed: expected 1, got 0",
    )
    assert vowels.parent_id == POOL[0].id and vowels.source == "synthesized"
    assert vowels.difficulty == "easy" and "evolve_harder" in vowels.tags
    digits = screened["r000/medium/0"].question
    assert (
        digits is not None and "same_skill_variant" in digits.tags and digits.difficulty == "medium"
    )


def test_each_rejection_carries_all_its_reasons(screened: dict[str, Any]) -> None:
    assert codes(screened["r000/easy/1"]) == ["near_duplicate"]
    assert "r000/easy/0" in screened["r000/easy/1"].reasons[0]  # accepted earlier in the batch
    assert codes(screened["r000/medium/1"]) == ["near_duplicate"]
    assert POOL[0].id in screened["r000/medium/1"].reasons[0]  # a pool question
    assert codes(screened["r000/hard/0"]) == ["too_few_tests"]
    assert codes(screened["r000/hard/1"]) == ["contaminated_exact", "contaminated_near"]
    assert codes(screened["r000/hard/2"]) == ["missing_section"]
    assert len(screened["r000/hard/2"].reasons) == 3
    assert codes(screened["r000/hard/3"]) == ["empty_text"]


def test_the_funnel_counts_each_step(screened: dict[str, Any]) -> None:
    summary = stage.summarize(list(screened.values()), feedback_for(BUCKETS), SynthesisConfig())
    assert summary["funnel"] == {
        "requested": 8, "generated": 7, "parsed": 6, "validated": 5, "not_duplicate": 3,
        "not_contaminated": 2, "accepted": 2,
    }  # fmt: skip
    assert summary["per_bucket"]["easy"]["accepted"] == 1
    assert summary["per_bucket"]["hard"]["requested"] == 4
    assert summary["rejections_by_reason"]["near_duplicate"] == 2
    assert summary["tests_dropped_from_accepted"] == 1


def test_requests_are_seeded_cycled_and_skip_empty_buckets() -> None:
    feedback = feedback_for({SEED[i].id: "medium" for i in range(3)} | {SEED[3].id: "hard"})
    quota = {"easy": 2, "medium": 5, "hard": 2}
    first = plan_requests(SEED[:4], feedback, quota, seed=7, round_index=2)
    again = plan_requests(SEED[:4], feedback, quota, seed=7, round_index=2)
    assert [(r.id, r.parent.id) for r in first] == [(r.id, r.parent.id) for r in again]
    # no easy parent: nothing asked of that bucket
    assert [r.id for r in first] == [
        *(f"r002/medium/{k}" for k in range(5)),
        "r002/hard/0",
        "r002/hard/1",
    ]
    medium = [r.parent.id for r in first if r.bucket == "medium"]
    assert sorted(medium[:3]) == [q.id for q in SEED[:3]] and medium[3:] == medium[:2]
    assert [r.cycle for r in first if r.bucket == "medium"] == [0, 0, 0, 1, 1]
    assert all(r.parent.id == SEED[3].id and r.failures == "wrong_answer x1" for r in first[5:])
    orders = {
        tuple(r.parent.id for r in plan_requests(SEED[:4], feedback, quota, seed, 2)[:3])
        for seed in range(6)
    }
    assert len(orders) > 1  # the parents' order follows the seed


@pytest.mark.parametrize(
    ("carry_over", "max_size", "ids", "composition"),
    [
        ("unsolved", None, ["n0", "n1", POOL[1].id, POOL[2].id], (4, 2, 2, 0)),
        ("all", None, ["n0", "n1", *[q.id for q in POOL]], (5, 2, 3, 0)),
        ("none", None, ["n0", "n1"], (2, 2, 0, 0)),
        ("all", 3, ["n0", "n1", POOL[0].id], (3, 2, 1, 2)),
        ("unsolved", 1, ["n0"], (1, 1, 0, 3)),
    ],
)
def test_next_pool(
    carry_over: str, max_size: int | None, ids: list[str], composition: tuple
) -> None:
    new = [POOL[0].model_copy(update={"id": f"n{i}"}) for i in range(2)]
    cfg = PoolConfig(carry_over=carry_over, max_size=max_size)  # type: ignore[arg-type]
    pool, info = next_pool(POOL, feedback_for(BUCKETS), new, cfg)
    assert [q.id for q in pool] == ids
    assert (info["size"], info["new"], info["carried"], info["dropped_by_cap"]) == composition


def test_the_tiny_teacher_gives_an_honest_empty_funnel(tiny_models: Path, tmp_path: Path) -> None:
    overrides = [
        "synthesize.per_bucket={easy: 2, medium: 1, hard: 1}",
        "synthesize.max_new_tokens=48",
        "sandbox.workers=2",
    ]
    run, cfg = new_run(tmp_path / "run", overrides)
    summary = run_stage(run, cfg, 0, "synthesize")
    folder = run.stage_dir(0, "synthesize")
    candidates = [line for line in (folder / "candidates.jsonl").read_text().splitlines() if line]
    rejected = read_jsonl_dicts(folder / "rejected.jsonl")
    funnel = summary["funnel"]
    assert funnel["requested"] == len(candidates) == 4
    counts = [funnel[step] for step in FUNNEL]
    assert counts == sorted(counts, reverse=True)  # each step keeps at most what came in
    assert len(rejected) == funnel["requested"] - funnel["accepted"]
    assert all(row["reasons"] and row["failed_at"] in FUNNEL for row in rejected)
    accepted = read_jsonl(folder / "accepted.jsonl", Question)
    assert len(accepted) == funnel["accepted"]
    if funnel["accepted"] == 0:  # what the tiny teacher does: said, not faked
        assert "no new question accepted" in summary["note"]
    pool = read_jsonl(folder / "next_pool.jsonl", Question)
    assert summary["next_pool"]["size"] == len(pool)
    assert [q.id for q in pool[funnel["accepted"] :]] == [POOL[1].id, POOL[2].id]  # unsolved
    assert summary["per_bucket"]["easy"]["requested"] == 2


def test_the_stage_writes_screened_crafted_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole stage, with the teacher replaced by crafted texts (no model)."""
    crafted = {
        "r000/easy/0": VOWELS, "r000/medium/0": DIGITS, "r000/hard/0": TOO_FEW,
    }  # fmt: skip

    def fake_generate(ctx: Any, requests: list[Request]) -> tuple[dict, dict]:
        return {r.id: (crafted[r.id], "stop") for r in requests}, {"prompts": len(requests)}

    monkeypatch.setattr(stage, "generate_texts", fake_generate)
    overrides = ["synthesize.per_bucket={easy: 1, medium: 1, hard: 1}", "sandbox.workers=2"]
    run, cfg = new_run(tmp_path / "run", overrides)
    summary = run_stage(run, cfg, 0, "synthesize")
    folder = run.stage_dir(0, "synthesize")
    accepted = read_jsonl(folder / "accepted.jsonl", Question)
    assert [q.id for q in accepted] == ["r000/easy/0", "r000/medium/0"]
    rejected = read_jsonl_dicts(folder / "rejected.jsonl")
    assert [(r["id"], r["failed_at"]) for r in rejected] == [("r000/hard/0", "validated")]
    pool = read_jsonl(folder / "next_pool.jsonl", Question)
    assert [q.id for q in pool] == ["r000/easy/0", "r000/medium/0", POOL[1].id, POOL[2].id]
    assert summary["next_pool"] == {
        "size": 4, "new": 2, "carried": 2, "dropped_by_cap": 0, "carry_over": "unsolved",
    }  # fmt: skip
    assert summary["funnel"]["accepted"] == 2 and "note" not in summary


def read_jsonl_dicts(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line]

"""The synthesize stage: the real tiny models (an honest funnel), and the screening path end to
end on crafted teacher texts, a crafted perplexity scorer and a crafted judge (parse -> sandbox
tests + coverage -> dedup -> decontamination -> perplexity band -> judge -> pool)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from iterkd.config import PoolConfig, RunConfig, SynthesisConfig, load_config
from iterkd.execution import SandboxConfig
from iterkd.generation import generate
from iterkd.questions import Question, load_bundled
from iterkd.records import Bucket, FeedbackRecord, read_jsonl, write_json, write_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from iterkd.stages import synthesize as stage
from iterkd.stages.common import StageContext
from iterkd.stages.synthesize import FUNNEL, Request, next_pool, plan_requests, screen
from iterkd.synthesis import OPERATIONS

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
    cfg = load_config(None, ["synthesize.perplexity_model=tiny:teacher", *overrides])
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


UNTESTED_BRANCH = reply(
    "first_digit_value",
    "Return the value of the first decimal digit in text, or -1 when text holds none.",
    ["assert first_digit_value('ab3') == 3", "assert first_digit_value('7x') == 7"],
    "for ch in text:\n        if ch.isdigit():\n            return int(ch)\n    return -1",
)  # `return -1` never runs: 4 of 5 statements covered
HOSTILE = reply(
    "count_hash_marks",
    "Return how many '#' characters text holds.",
    ["assert count_hash_marks('#a#') == 2", "assert count_hash_marks('') == 0"],
    "import os, sys\n    if 'coverage' in sys.modules:\n        os._exit(0)\n"
    "    return text.count('#')",
)  # passes its tests, then kills the coverage driver
OUTLIER = reply(
    "count_spaces",
    "Return how many space characters (' ') text contains.",
    ["assert count_spaces('a b c') == 2", "assert count_spaces('') == 0"],
    "return text.count(' ')",
)
POOR = reply(
    "sum_digit_values",
    "Add up the numeric values of all decimal digits found in text (0 if none).",
    ["assert sum_digit_values('a1b22') == 5", "assert sum_digit_values('') == 0"],
    "return sum(int(ch) for ch in text if ch.isdigit())",
)
UNJUDGED = reply(
    "count_lines",
    "Number of lines: newline characters plus one, and 0 for an empty text.",
    ["assert count_lines('') == 0", "assert count_lines('a\\nb') == 2"],
    "return text.count('\\n') + 1 if text else 0",
)
LOG_PERPLEXITY = {  # by entry point: a band of median 2.1, MAD 0.1 -> [1.8, 2.4] at k = 3
    "count_vowels": 2.0, "count_digits": 2.1, "count_spaces": 9.0, "sum_digit_values": 2.2,
    "count_lines": 1.9,
}  # fmt: skip
JUDGE_REPLIES = {
    "r000/easy/0": '{"clarity": 9, "tests": 8, "usefulness": 7, "overall": 8}',
    "r000/medium/0": "Overall: 7",
    "r000/medium/3": '{"clarity": 3, "tests": 2, "usefulness": 3, "overall": 3}',
    "r000/hard/4": "a fine exercise, I would say",  # no score: missing
}


def crafted_scorer(texts: Any) -> list[float]:
    return [next(v for k, v in LOG_PERPLEXITY.items() if f"def {k}(" in t) for t in texts]


class CraftedJudge:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, prompts: Any) -> dict[str, str | None]:
        self.asked += [p.id for p in prompts]
        return {p.id: JUDGE_REPLIES[p.id] for p in prompts}


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
        "r000/medium/2": UNTESTED_BRANCH,
        "r000/hard/5": HOSTILE,
        "r000/easy/2": OUTLIER,
        "r000/medium/3": POOR,
        "r000/hard/4": UNJUDGED,
    }
    parents = {"easy": POOL[0], "medium": POOL[1], "hard": POOL[2]}
    requests = [
        Request(
            id=key,
            bucket=key.split("/")[1],
            parent=parents[key.split("/")[1]],  # type: ignore[arg-type]
            operation=OPERATIONS[0] if "easy" in key else "",
        )
        for key in texts
    ]
    return requests, texts


@pytest.fixture(scope="module")
def screening() -> tuple[Any, CraftedJudge]:
    requests, texts = crafted_requests()
    judge = CraftedJudge()
    result = screen(
        requests, texts, cfg=SynthesisConfig(perplexity_model="tiny:teacher"), sandbox=SANDBOX,
        known=POOL, held_out=HELD_OUT, perplexity=crafted_scorer, judge=judge,
    )  # fmt: skip
    return result, judge


@pytest.fixture(scope="module")
def screened(screening: tuple[Any, CraftedJudge]) -> dict[str, Any]:
    return {o.request.id: o for o in screening[0].outcomes}


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
    assert vowels.difficulty == "easy"
    assert vowels.tags[-2:] == ["evolve_harder", f"evolve:{OPERATIONS[0]}"]  # operation recorded
    assert screened["r000/easy/0"].quality == 8.0 and screened["r000/easy/0"].notes == []
    coverage = screened["r000/easy/0"].coverage
    assert (coverage.covered, coverage.total) == (2, 2)
    digits = screened["r000/medium/0"].question
    assert (
        digits is not None and "same_skill_variant" in digits.tags and digits.difficulty == "medium"
    )
    assert screened["r000/medium/0"].quality == 7.0  # from an `Overall: N` line


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
    assert screened["r000/medium/2"].reasons == [
        "low_coverage: the kept tests run 4 of the reference's 5 statements (0.80 < min 0.9)"
    ]
    assert codes(screened["r000/hard/5"]) == ["coverage_unmeasured"]  # hostile: one reason more
    assert codes(screened["r000/easy/2"]) == ["perplexity_outlier"]
    assert "above the band [1.8000, 2.4000]" in screened["r000/easy/2"].reasons[0]
    assert screened["r000/medium/3"].reasons == ["low_quality: overall 3 < quality_bar 6"]


def test_model_checks_see_only_survivors(screening: tuple[Any, CraftedJudge]) -> None:
    """The band is taken over the 5 candidates that passed the cheap checks; the judge is asked
    only about the 4 inside it; an unparseable judge reply is kept by default, with a note."""
    result, judge = screening
    assert result.report["perplexity"] == {
        "model": "tiny:teacher", "scored": 5, "median": 2.1, "mad": 0.1, "low": 1.8,
        "high": 2.4, "notes": [],
    }  # fmt: skip
    assert judge.asked == ["r000/easy/0", "r000/medium/0", "r000/medium/3", "r000/hard/4"]
    kept = next(o for o in result.outcomes if o.request.id == "r000/hard/4")
    assert kept.question is not None and kept.quality is None and kept.reasons == []
    assert kept.notes == [
        "quality_missing_kept: no score found: neither a JSON object nor a 'Score: N' / "
        "'Overall: N' line"
    ]
    assert result.report["quality"] == {
        "asked": 4, "scored": 3, "missing": 1, "quality_bar": 6.0, "quality_missing": "keep",
    }  # fmt: skip


def test_without_models_the_model_checks_are_skipped_and_said() -> None:
    requests, texts = crafted_requests()
    result = screen(
        requests[:1], texts, cfg=SynthesisConfig(), sandbox=SANDBOX, known=POOL, held_out=HELD_OUT
    )
    assert [q.id for q in result.accepted] == ["r000/easy/0"]
    assert (
        result.report["perplexity"]["model"] is None and result.report["quality"]["judge"] is None
    )


def test_the_funnel_counts_each_step(screening: tuple[Any, CraftedJudge]) -> None:
    result = screening[0]
    summary = stage.summarize(
        result.outcomes, feedback_for(BUCKETS), SynthesisConfig(), result.report
    )
    assert list(summary["funnel"]) == list(FUNNEL)  # reported in funnel order
    assert summary["funnel"] == {
        "requested": 13, "generated": 12, "parsed": 11, "validated": 8, "not_duplicate": 6,
        "not_contaminated": 5, "perplexity_ok": 4, "quality_ok": 3, "accepted": 3,
    }  # fmt: skip
    easy = summary["per_bucket"]["easy"]
    assert (easy["template"], easy["accepted"], easy["operations"]) == (
        "synthesize_harder", 1, {OPERATIONS[0]: 3},
    )  # fmt: skip
    assert summary["per_bucket"]["hard"]["requested"] == 6
    assert summary["per_bucket"]["medium"]["quality_ok"] == 1
    assert summary["rejections_by_reason"]["near_duplicate"] == 2
    assert summary["rejections_by_reason"]["low_quality"] == 1
    assert summary["tests_dropped_from_accepted"] == 1
    assert summary["notes_on_accepted"] == {"quality_missing_kept": 1}
    assert summary["perplexity"]["scored"] == 5 and summary["coverage"]["measured"] == 9


def test_a_parent_asked_again_takes_the_next_sample_of_one_call(
    tmp_path: Path, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5 medium requests over 3 parents: the 2 parents asked twice are one prompt with n=2 and
    get two different answers; one generation call per distinct n, not one per repetition."""
    feedback = feedback_for({SEED[i].id: "medium" for i in range(3)})
    requests = plan_requests(SEED[:3], feedback, {"easy": 0, "medium": 5, "hard": 0}, 7, 0)
    cfg = load_config(None, [f"models.teacher.path={tiny_models / 'student'}",
                             "synthesize.max_new_tokens=16"])  # fmt: skip
    ctx = StageContext(run=RunDir.create(tmp_path / "run", cfg), cfg=cfg, round=0,
                       stage="synthesize", out=tmp_path / "out")  # fmt: skip
    ctx.out.mkdir()
    calls: list[tuple[int, int]] = []

    def counted(backend, prompts, params, *args, **kwargs):  # the real generate, counted
        calls.append((len(prompts), params.n))
        return generate(backend, prompts, params, *args, **kwargs)

    monkeypatch.setattr(stage, "generate", counted)
    texts, report = stage.generate_texts(ctx, requests)
    assert sorted(calls) == [(1, 1), (2, 2)]
    assert set(texts) == {r.id for r in requests} and report["completion_tokens"] > 0
    for parent in {r.parent.id for r in requests if r.cycle == 1}:
        answers = [texts[r.id][0] for r in requests if r.parent.id == parent]
        assert len(answers) == 2 and answers[0] != answers[1]


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


def test_the_tiny_models_give_an_honest_funnel(tiny_models: Path, tmp_path: Path) -> None:
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
    rows = read_jsonl_dicts(folder / "candidates.jsonl")
    assert [row["operation"] in OPERATIONS for row in rows] == [True, True, False, False]
    scored = [row["log_perplexity"] for row in rows if row["log_perplexity"] is not None]
    assert len(scored) == summary["perplexity"]["scored"] == funnel["not_contaminated"]
    assert all(math.isfinite(value) for value in scored)
    assert summary["quality"]["asked"] == funnel["perplexity_ok"]


def test_the_stage_writes_screened_crafted_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole stage, with the teacher replaced by crafted texts; the perplexity model and
    the judge are the real tiny ones (too few candidates for a band; the untrained judge gives
    no parseable score, so both are kept, with a note)."""
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
    assert summary["perplexity"]["scored"] == 2 and summary["perplexity"]["low"] is None
    assert summary["quality"]["asked"] == 2
    rows = {row["id"]: row for row in read_jsonl_dicts(folder / "candidates.jsonl")}
    assert all(math.isfinite(rows[q.id]["log_perplexity"]) for q in accepted)
    assert all(rows[q.id]["failed_at"] is None for q in accepted)
    assert rows["r000/hard/0"]["failed_at"] == "validated"
    if rows["r000/easy/0"]["quality"] is None:  # unparseable: kept by the default policy
        assert rows["r000/easy/0"]["notes"][0].startswith("quality_missing_kept: ")


def read_jsonl_dicts(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line]

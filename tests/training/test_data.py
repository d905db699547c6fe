"""SFT rows and contrastive pairs: which samples are chosen, and how they are encoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from iterkd.generation.base import render_with_chat_template
from iterkd.modeling import load_tokenizer
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord, VerdictRecord
from iterkd.stages.common import solve_prompt
from iterkd.training.data import (
    IGNORE_INDEX,
    Encoder,
    EncodeStats,
    analyzer_scores,
    build_examples,
    candidate_faults,
    contrast_examples,
    encode,
    normalise_code,
    row_weights,
    select_groups,
    select_pairs,
    select_sft_rows,
    sfim_examples,
    sft_examples,
)
from iterkd.training.sfim import FimSplit, FimTokens, format_fim


def sample(question: str, role: str, index: int, code: str, **fields) -> SampleRecord:
    return SampleRecord(
        id=f"{question}/{role}/{index}",
        question_id=question,
        role=role,
        index=index,
        text=fields.pop("text", f"```python\n{code}```"),
        code=code,
        finish_reason=fields.pop("finish_reason", "stop"),
        prompt_tokens=1,
        completion_tokens=1,
    )


def ids(samples) -> list[str]:
    return [s.id for s in samples]


# ------------------------------------------------------------------ normalisation
def test_normalise_code_ignores_formatting_and_comments():
    assert normalise_code("def f(x):\n    return x+1  # one\n") == normalise_code(
        "def f( x ):\n\n    return (x + 1)\n"
    )
    assert normalise_code("def f(x): return x") != normalise_code("def f(x): return -x")


def test_normalise_code_of_broken_code_compares_lines():
    assert normalise_code("def f(:\n  pass   \n\n") == normalise_code("def f(:\n  pass")
    assert normalise_code("def f(:\n  pass") != normalise_code("def f(:\n    pass")


# ------------------------------------------------------------------ SFT rows
def test_rows_are_passed_teacher_answers_only():
    teacher = [sample("q", "teacher", i, f"x = {i}") for i in range(4)]
    passed = {"q/teacher/0": False, "q/teacher/1": True, "q/teacher/3": True}  # 2: no verdict
    assert ids(select_sft_rows(teacher, passed, 10)) == ["q/teacher/1", "q/teacher/3"]


def test_rows_deduplicate_the_same_program_keeping_the_first():
    teacher = [
        sample("q", "teacher", 0, "x = 1"),
        sample("q", "teacher", 1, "x=1  # same program"),
        sample("q", "teacher", 2, "x = 2"),
    ]
    passed = dict.fromkeys(ids(teacher), True)
    assert ids(select_sft_rows(teacher, passed, 10)) == ["q/teacher/0", "q/teacher/2"]


def test_rows_are_capped_per_question_complete_answers_first():
    teacher = [
        sample("a", "teacher", 0, "x = 0", finish_reason="length"),
        sample("a", "teacher", 1, "x = 1"),
        sample("a", "teacher", 2, "x = 2"),
        sample("b", "teacher", 0, "y = 0"),
        sample("a", "teacher", 3, "x = 3"),
    ]
    passed = dict.fromkeys(ids(teacher), True)
    rows = select_sft_rows(teacher, passed, 2)
    assert ids(rows) == ["a/teacher/1", "a/teacher/2", "b/teacher/0"]
    # questions in order of first appearance; within one, the same choice whatever the order
    assert ids(select_sft_rows(list(reversed(teacher)), passed, 2)) == [
        "a/teacher/1",
        "a/teacher/2",
        "b/teacher/0",
    ]


def test_rows_skip_empty_answers():
    teacher = [sample("q", "teacher", 0, "", text="")]
    assert select_sft_rows(teacher, {"q/teacher/0": True}, 4) == []


# ------------------------------------------------------------------ pairs
def test_pairs_match_rows_with_failed_student_answers_of_the_same_question():
    rows = [sample("a", "teacher", 0, "x = 1"), sample("b", "teacher", 0, "y = 1")]
    student = [
        sample("a", "student", 0, "x = 0"),  # failed
        sample("a", "student", 1, "x = 2"),  # passed: not a fault
        sample("a", "student", 2, "x = 3"),  # no verdict: not known to be a fault
        sample("c", "student", 0, "z = 0"),  # failed, but no row for c
    ]
    passed = {"a/student/0": False, "a/student/1": True, "c/student/0": False}
    pairs = select_pairs(rows, candidate_faults(rows, student, passed), 4)
    assert [(c.id, r.id) for c, r in pairs] == [("a/teacher/0", "a/student/0")]


def test_pairs_skip_faults_equal_to_a_correct_program_and_duplicate_faults():
    rows = [sample("a", "teacher", 0, "x = 1")]
    student = [
        sample("a", "student", 0, "x=1"),  # failed (flaky), yet the same program: no contrast
        sample("a", "student", 1, "x = 0"),
        sample("a", "student", 2, "x =  0"),  # the same fault again
    ]
    passed = dict.fromkeys(ids(student), False)
    pairs = select_pairs(rows, candidate_faults(rows, student, passed), 4)
    assert [(c.id, r.id) for c, r in pairs] == [("a/teacher/0", "a/student/1")]


def test_pairs_are_capped_and_spread_over_chosen_and_rejected():
    rows = [sample("a", "teacher", i, f"x = {i}") for i in range(3)]
    student = [sample("a", "student", i, f"x = -{i + 1}") for i in range(3)]
    passed = dict.fromkeys(ids(student), False)
    pairs = select_pairs(rows, candidate_faults(rows, student, passed), 4)
    assert [(c.index, r.index) for c, r in pairs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(select_pairs(rows, candidate_faults(rows, student, passed), 100)) == 9
    assert select_pairs(rows, candidate_faults(rows, student, passed), 4) == pairs  # deterministic


# ------------------------------------------------------------------ encoding
def test_encode_masks_the_prompt_and_cuts_the_answer():
    full = encode([1, 2, 3], [7, 8, 9], max_length=10)
    assert full is not None
    assert full.input_ids == [1, 2, 3, 7, 8, 9]
    assert full.labels == [IGNORE_INDEX] * 3 + [7, 8, 9]
    assert not full.truncated and full.completion_tokens == 3
    cut = encode([1, 2, 3], [7, 8, 9], max_length=4)
    assert cut is not None and cut.input_ids == [1, 2, 3, 7] and cut.truncated
    assert encode([1, 2, 3], [7, 8, 9], max_length=3) is None


@pytest.fixture(scope="module")
def tokenizer(tiny_models: Path):
    return load_tokenizer(tiny_models / "student", need_chat_template=True)


def test_build_examples_with_the_student_chat_template(tokenizer):
    question = load_bundled("seed")[0]
    prompt = render_with_chat_template(tokenizer, solve_prompt(question), "test")
    row = sample(question.id, "teacher", 0, question.reference_solution)
    fault = sample(question.id, "student", 0, "def f():\n    return None\n")
    examples, stats = build_examples(tokenizer, {question.id: prompt}, [row], [(row, fault)], 512)
    assert [list(e) for e in examples] == [
        ["sft", "weight", "objective"],
        ["chosen", "rejected", "ref"],
    ]
    assert examples[0]["weight"] == 1.0 and examples[1]["ref"] is None
    sft = examples[0]["sft"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert prompt.startswith(tokenizer.bos_token) and prompt.endswith("<|assistant|>\n")
    assert sft["input_ids"][: len(prompt_ids)] == prompt_ids
    assert sft["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    answer = [t for t in sft["labels"] if t != IGNORE_INDEX]
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]) == row.text
    assert examples[1]["chosen"] == sft
    assert tokenizer.decode(examples[1]["rejected"][0]["input_ids"]).endswith(
        fault.text + "<|end|>"
    )
    assert (stats.sft_rows, stats.pairs, stats.truncated, stats.dropped_too_long) == (1, 1, 0, 0)
    assert stats.questions_with_rows == stats.questions_with_pairs == {question.id}


def test_build_examples_cuts_and_drops_at_max_length(tokenizer):
    question = load_bundled("seed")[0]
    prompt = render_with_chat_template(tokenizer, solve_prompt(question), "test")
    prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    row = sample(question.id, "teacher", 0, question.reference_solution)
    fault = sample(question.id, "student", 0, question.reference_solution + "# broken\n")
    examples, stats = build_examples(
        tokenizer, {question.id: prompt}, [row], [(row, fault)], prompt_length + 3
    )
    # the row is cut to 3 answer tokens; the pair's two sides become the same 3 tokens: dropped
    assert [e["objective"] for e in examples] == ["sft"]
    assert len(examples[0]["sft"]["input_ids"]) == prompt_length + 3
    assert (stats.sft_rows, stats.pairs, stats.truncated, stats.dropped_too_long) == (1, 0, 1, 1)
    examples, stats = build_examples(tokenizer, {question.id: prompt}, [row], [], prompt_length)
    assert examples == [] and stats.dropped_too_long == 1


# ------------------------------------------------------------------ row weights
def test_row_weights_floor_plus_the_mean_of_the_known_scores():
    rows = [sample("q", "teacher", i, f"x = {i}") for i in range(3)]
    scores = {"q/teacher/0": [0.5, None, 1.0], "q/teacher/1": [0.0, 0.0]}  # 2: never scored
    assert row_weights(rows, scores, floor=0.2) == {
        "q/teacher/0": pytest.approx(0.2 + 0.8 * 0.75),
        "q/teacher/1": pytest.approx(0.2),
        "q/teacher/2": 1.0,
    }


def test_row_weights_without_a_score_weigh_one_and_are_rounded_to_six_digits():
    rows = [sample("q", "teacher", i, f"x = {i}") for i in range(4)]
    scores = {"q/teacher/0": [], "q/teacher/1": [None, None], "q/teacher/2": [0.1234567]}
    weights = row_weights(rows, scores, floor=0.0)
    assert weights == {
        "q/teacher/0": 1.0,
        "q/teacher/1": 1.0,
        "q/teacher/2": 0.123457,
        "q/teacher/3": 1.0,
    }
    # 0.1 + 0.9 / 3 is 0.4000000000000001 in floats: rounding gives 0.4 itself
    assert row_weights(rows[:1], {"q/teacher/0": [1 / 3]}, floor=0.1) == {"q/teacher/0": 0.4}


# ------------------------------------------------------------------ candidate faults
def test_candidate_faults_are_distinct_failed_answers_that_are_not_a_correct_program():
    rows = [
        sample("a", "teacher", 0, "x = 1"),
        sample("a", "teacher", 1, "x = 2"),
        sample("b", "teacher", 0, "y = 1"),
    ]
    student = [
        sample("a", "student", 0, "x=1"),  # failed, yet the same program as a row: no contrast
        sample("a", "student", 1, "x = 0"),
        sample("a", "student", 2, "x =  0"),  # the same fault again
        sample("a", "student", 3, "x = 3"),  # passed
        sample("a", "student", 4, "x = 2  # the other row"),  # failed, equal to row 1
        sample("a", "student", 5, "x = 5"),  # no verdict
        sample("a", "student", 6, "x = 6", text=""),  # failed, empty answer
        sample("a", "student", 7, "x = 7", finish_reason="length"),  # cut, after complete ones
        sample("a", "student", 8, "x = 8"),
        sample("c", "student", 0, "z = 0"),  # failed, but c has no row
    ]
    passed = dict.fromkeys(ids(student), False)
    passed["a/student/3"] = True
    del passed["a/student/5"]
    faults = candidate_faults(rows, student, passed)
    assert {q: ids(f) for q, f in faults.items()} == {
        "a": ["a/student/1", "a/student/8", "a/student/7"],
        "b": [],  # a question with rows but no fault
    }


# ------------------------------------------------------------------ ranked pairs
def ranked_question():
    """Two rows and four faults of question a; rank: the student's mean log-prob of each."""
    rows = [sample("a", "teacher", i, f"x = {i}") for i in range(2)]
    student = [
        sample("a", "student", 0, "x = -1", finish_reason="length"),
        sample("a", "student", 1, "x = -2"),
        sample("a", "student", 2, "x = -3"),
        sample("a", "student", 3, "x = -4"),
    ]
    passed = dict.fromkeys(ids(student), False)
    rank = {"a/student/0": -1.0, "a/student/1": -1.0, "a/student/2": -0.5, "a/student/3": -9.0}
    return rows, student, passed, rank


def test_pairs_ranked_hardest_first_ties_by_sample_index():
    rows, student, passed, rank = ranked_question()
    pairs = select_pairs(rows, candidate_faults(rows, student, passed), 4, rank=rank)
    # hardest: 2 (-0.5); then 0 and 1 tie at -1.0: index 0 first, though 0 was cut (unranked, a
    # complete answer would come first)
    assert [(c.index, r.index) for c, r in pairs] == [(0, 2), (0, 0), (1, 2), (1, 0)]
    assert [
        (c.index, r.index)
        for c, r in select_pairs(rows, candidate_faults(rows, student, passed), 1, rank=rank)
    ] == [
        (0, 2)  # cap 1: the first chosen against the hardest fault
    ]


def test_pairs_without_rank_keep_the_old_order():
    rows, student, passed, _ = ranked_question()
    pairs = select_pairs(rows, candidate_faults(rows, student, passed), 4, rank=None)
    # complete answers first, then by index: 1, 2, 3, then the cut 0
    assert [(c.index, r.index) for c, r in pairs] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert select_pairs(rows, candidate_faults(rows, student, passed), 4) == pairs


# ------------------------------------------------------------------ InfoNCE groups
def groups_question():
    rows = [sample("a", "teacher", i, f"x = {i}") for i in range(3)]
    rows.append(sample("b", "teacher", 0, "y = 0"))  # b: no fault
    student = [sample("a", "student", i, f"x = -{i + 1}") for i in range(3)]
    student.append(sample("b", "student", 0, "y = 0"))  # failed, but the same program as b's row
    return rows, student, dict.fromkeys(ids(student), False)


def as_indices(groups) -> list[tuple[str, tuple[int, ...]]]:
    return [(chosen.id, tuple(r.index for r in rejected)) for chosen, rejected in groups]


def test_groups_shift_their_negatives_along_the_faults_and_wrap():
    rows, student, passed = groups_question()
    groups = select_groups(
        rows, candidate_faults(rows, student, passed), max_per_question=3, negatives=2
    )
    assert as_indices(groups) == [
        ("a/teacher/0", (0, 1)),
        ("a/teacher/1", (1, 2)),
        ("a/teacher/2", (2, 0)),  # wraps; b has no fault: no group
    ]
    groups = select_groups(
        rows, candidate_faults(rows, student, passed), max_per_question=2, negatives=5
    )
    assert as_indices(groups) == [("a/teacher/0", (0, 1, 2)), ("a/teacher/1", (1, 2, 0))]


def test_groups_follow_the_ranked_faults():
    rows, student, passed = groups_question()
    rank = {"a/student/0": -3.0, "a/student/1": -2.0, "a/student/2": -1.0, "b/student/0": 0.0}
    groups = select_groups(
        rows, candidate_faults(rows, student, passed), max_per_question=2, negatives=1, rank=rank
    )
    assert as_indices(groups) == [("a/teacher/0", (2,)), ("a/teacher/1", (1,))]
    groups = select_groups(
        rows, candidate_faults(rows, student, passed), max_per_question=1, negatives=2, rank=rank
    )
    assert as_indices(groups) == [("a/teacher/0", (2, 1))]


# ------------------------------------------------------------------ encoder, SFT, SFIM, contrast
@pytest.fixture(scope="module")
def seed_prompt(tokenizer):
    """(question id, rendered prompt, its length in tokens) of the first seed question."""
    question = load_bundled("seed")[0]
    prompt = render_with_chat_template(tokenizer, solve_prompt(question), "test")
    return question.id, prompt, len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_sft_examples_carry_the_row_weights(tokenizer, seed_prompt):
    qid, prompt, _ = seed_prompt
    rows = [sample(qid, "teacher", 0, "x = 1"), sample(qid, "teacher", 1, "x = 2")]
    encoder, stats = Encoder(tokenizer, {qid: prompt}, 512), EncodeStats()
    weights = {rows[0].id: 0.25, rows[1].id: 1.0}
    examples = sft_examples(encoder, rows, stats, weights)
    assert [(e["weight"], e["objective"]) for e in examples] == [(0.25, "sft"), (1.0, "sft")]
    assert examples[0]["sft"] == encoder.answer(rows[0]).as_dict()
    assert encoder.answer(rows[0]) is encoder.answer(rows[0])  # tokenized once
    assert (stats.sft_rows, stats.dropped_too_long) == (2, 0)
    assert stats.questions_with_rows == {qid}
    assert stats.completion_tokens == sum(encoder.answer(r).completion_tokens for r in rows)
    unweighted = sft_examples(encoder, rows, EncodeStats())
    assert [e["weight"] for e in unweighted] == [1.0, 1.0]


def test_sft_examples_drop_rows_with_no_room_and_count_them(tokenizer, seed_prompt):
    qid, prompt, prompt_length = seed_prompt
    rows = [sample(qid, "teacher", 0, "x = 1")]
    stats = EncodeStats()
    assert sft_examples(Encoder(tokenizer, {qid: prompt}, prompt_length), rows, stats) == []
    assert (stats.sft_rows, stats.dropped_too_long, stats.questions_with_rows) == (0, 1, set())


SPLIT = FimSplit(prefix="def f():\n", middle="    return 1\n", suffix="x = f()\n", node="Return")


def test_sfim_examples_label_only_the_middle_and_eos(tokenizer):
    context, middle = format_fim(SPLIT, FimTokens(), "psm")
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    middle_ids = tokenizer(middle, add_special_tokens=False)["input_ids"]
    stats = EncodeStats()
    examples = sfim_examples(Encoder(tokenizer, {}, 512), [("q", context, middle)], 0.3, stats)
    assert [(e["weight"], e["objective"]) for e in examples] == [(0.3, "sfim")]
    row = examples[0]["sft"]
    assert row["input_ids"] == [*context_ids, *middle_ids, tokenizer.eos_token_id]
    assert row["labels"] == [IGNORE_INDEX] * len(context_ids) + [
        *middle_ids,
        tokenizer.eos_token_id,
    ]
    assert (stats.sfim_rows, stats.sft_rows, stats.truncated) == (1, 0, 0)
    assert stats.completion_tokens == len(middle_ids) + 1


def test_sfim_examples_cut_the_middle_and_drop_a_context_that_fills_max_length(tokenizer):
    context, middle = format_fim(SPLIT, FimTokens(), "psm")
    length = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    items = [("q", context, middle)]
    stats = EncodeStats()
    cut = sfim_examples(Encoder(tokenizer, {}, length + 2), items, 1.0, stats)
    assert [t for t in cut[0]["sft"]["labels"] if t != IGNORE_INDEX] == tokenizer(
        middle, add_special_tokens=False
    )["input_ids"][:2]
    assert (stats.sfim_rows, stats.truncated, stats.dropped_too_long) == (1, 1, 0)
    stats = EncodeStats()
    assert sfim_examples(Encoder(tokenizer, {}, length), items, 1.0, stats) == []
    assert (stats.sfim_rows, stats.dropped_too_long) == (0, 1)


def contrast_group(qid: str):
    """A chosen answer and three negatives: the first shares the chosen's first 5 tokens."""
    chosen = sample(qid, "teacher", 0, "", text="def f(): return 1")
    negatives = (
        sample(qid, "student", 0, "", text="def f(): return 1  # broken"),
        sample(qid, "student", 1, "", text="import os"),
        sample(qid, "student", 2, "", text="def g(): pass"),
    )
    reference = {chosen.id: -1.0, **{s.id: -2.0 - s.index for s in negatives}}
    return chosen, negatives, reference


def test_contrast_examples_one_example_per_group_with_its_reference_sums(tokenizer, seed_prompt):
    qid, prompt, _ = seed_prompt
    chosen, negatives, reference = contrast_group(qid)
    encoder, stats = Encoder(tokenizer, {qid: prompt}, 512), EncodeStats()
    examples = contrast_examples(encoder, [(chosen, negatives)], stats, reference)
    assert len(examples) == 1
    example = examples[0]
    assert example["chosen"] == encoder.answer(chosen).as_dict()
    assert example["rejected"] == [encoder.answer(s).as_dict() for s in negatives]
    assert example["ref"] == [-1.0, -2.0, -3.0, -4.0]  # [chosen, *negatives], in order
    assert (stats.pairs, stats.negatives, stats.dropped_too_long) == (1, 3, 0)
    assert stats.questions_with_pairs == {qid}
    no_ref = contrast_examples(encoder, [(chosen, negatives)], EncodeStats())
    assert no_ref[0]["ref"] is None


def test_contrast_examples_drop_negatives_equal_to_the_chosen_after_the_cut(tokenizer, seed_prompt):
    qid, prompt, prompt_length = seed_prompt
    chosen, negatives, reference = contrast_group(qid)
    encoder, stats = Encoder(tokenizer, {qid: prompt}, prompt_length + 3), EncodeStats()
    examples = contrast_examples(
        encoder, [(chosen, negatives), (chosen, negatives[:1])], stats, reference
    )
    # cut to 3 answer tokens, the first negative is the chosen ("def f ():"): it leaves the group,
    # and its reference sum with it; the group of that negative alone has no contrast left
    assert len(examples) == 1
    assert examples[0]["rejected"] == [encoder.answer(s).as_dict() for s in negatives[1:]]
    assert examples[0]["ref"] == [-1.0, -3.0, -4.0]
    assert (stats.pairs, stats.negatives, stats.dropped_too_long) == (1, 2, 1)
    # "import os" + eos fits in 3 tokens; the chosen and "def g(): pass" are cut
    assert stats.truncated == 2


def test_analyzer_scores_are_scaled_to_the_unit_range_row_weights_takes():
    verdicts = [
        VerdictRecord(sample_id="a", question_id="q", role="teacher", index=0, status="passed",
                      passed=True, tests_passed=1, tests_total=1, ruff_score=10.0,
                      pylint_score=5.0),
        VerdictRecord(sample_id="b", question_id="q", role="teacher", index=1, status="passed",
                      passed=True, tests_passed=1, tests_total=1, lint_score=8.0),
    ]  # fmt: skip
    scores = analyzer_scores(verdicts)
    assert scores == {"a": [1.0, 0.5, None], "b": [None, None, 0.8]}
    rows = [sample("q", "teacher", i, f"x = {i}") for i in range(2)]
    rows[0].id, rows[1].id = "a", "b"
    assert row_weights(rows, scores, floor=0.5) == {"a": 0.875, "b": 0.9}

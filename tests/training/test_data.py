"""SFT rows and contrastive pairs: which samples are chosen, and how they are encoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from iterkd.generation.base import render_with_chat_template
from iterkd.modeling import load_tokenizer
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord
from iterkd.stages.common import solve_prompt
from iterkd.training.data import (
    IGNORE_INDEX,
    build_examples,
    encode,
    normalise_code,
    select_pairs,
    select_sft_rows,
)


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
    pairs = select_pairs(rows, student, passed, 4)
    assert [(c.id, r.id) for c, r in pairs] == [("a/teacher/0", "a/student/0")]


def test_pairs_skip_faults_equal_to_a_correct_program_and_duplicate_faults():
    rows = [sample("a", "teacher", 0, "x = 1")]
    student = [
        sample("a", "student", 0, "x=1"),  # failed (flaky), yet the same program: no contrast
        sample("a", "student", 1, "x = 0"),
        sample("a", "student", 2, "x =  0"),  # the same fault again
    ]
    passed = dict.fromkeys(ids(student), False)
    pairs = select_pairs(rows, student, passed, 4)
    assert [(c.id, r.id) for c, r in pairs] == [("a/teacher/0", "a/student/1")]


def test_pairs_are_capped_and_spread_over_chosen_and_rejected():
    rows = [sample("a", "teacher", i, f"x = {i}") for i in range(3)]
    student = [sample("a", "student", i, f"x = -{i + 1}") for i in range(3)]
    passed = dict.fromkeys(ids(student), False)
    pairs = select_pairs(rows, student, passed, 4)
    assert [(c.index, r.index) for c, r in pairs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(select_pairs(rows, student, passed, 100)) == 9
    assert select_pairs(rows, student, passed, 4) == pairs  # deterministic


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

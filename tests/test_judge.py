"""Judge replies -> scores: JSON first, `Overall: N` / `Score: N` fallbacks, never coerced."""

from __future__ import annotations

import pytest

from iterkd.judge import judge_prompt, judge_record, overall_view, parse_judgement
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord


def test_a_json_object_gives_every_score() -> None:
    text = (
        'Here you go: {"correctness": 9, "readability": 7, "efficiency": 8, '
        '"robustness": 6.5, "overall": 8}'
    )
    scores, error = parse_judgement(text)
    assert error is None and scores is not None
    assert scores.model_dump() == {
        "correctness": 9.0,
        "readability": 7.0,
        "efficiency": 8.0,
        "robustness": 6.5,
        "overall": 8.0,
    }


def test_json_keys_in_any_case_and_a_fenced_object_are_read() -> None:
    scores, _ = parse_judgement('```json\n{"Overall": 3, "Correctness": 2}\n```')
    assert scores is not None and scores.overall == 3 and scores.correctness == 2
    assert scores.readability is None  # not given: missing, not invented


def test_an_earlier_brace_that_is_not_json_is_skipped() -> None:
    scores, _ = parse_judgement('def f(): return {x}\n{"overall": 5}')
    assert scores is not None and scores.overall == 5


@pytest.mark.parametrize(
    ("text", "overall"),
    [
        ("Overall: 7", 7.0),
        ("overall score = 6/10", 6.0),
        ("The code is fine.\nScore: 9", 9.0),
        ("OVERALL: 1", 1.0),
        ("Overall: 10/10", 10.0),
        ("Overall: 7.5", 7.5),
        ("**Overall:** 7", 7.0),  # markdown emphasis around the label or the number
        ("*Score*: **6**/10", 6.0),
        ("`Score: 4`", 4.0),
        ("Your answer is correct and the score is 7.", 7.0),  # a sentence ending in a period
        ("Correctness: 9\nReadability: 4\nOverall: 8", 8.0),  # overall decides
        ("I would rate this answer 7/10.", 7.0),  # one lone N/10
        ("Rating: 3 out of 10", 3.0),
        ("Score: 6\nThe code is short. Score: 6.", 6.0),  # repeated, the same value
        ("{'overall': 5, 'efficiency': 4,}", 5.0),  # a Python dict, trailing comma
        ("10", 10.0),  # a reply that is one number and nothing else
        (" **7**.\n", 7.0),
    ],
)
def test_text_fallbacks(text: str, overall: float) -> None:
    scores, error = parse_judgement(text)
    assert error is None and scores is not None
    assert scores.overall == overall and scores.correctness is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"overall": 11}', "outside 1-10"),
        ('{"overall": 0}', "outside 1-10"),
        ('{"overall": 8, "correctness": 12}', "correctness"),
        ('{"overall": "8"}', "not a number"),
        ('{"overall": true}', "not a number"),
        ('{"overall": NaN}', "outside 1-10"),
        ('{"correctness": 8}', "no 'overall'"),
        ("Overall: 85/100", "scale of 100"),
        ("Score: -3", "outside 1-10"),
        ("Overall: 42", "outside 1-10"),
        ("this answer looks fine to me", "no score found"),
        ("", "no score found"),
        ("\n\n\n", "no score found"),
        ("Score: N", "no score found"),  # the format's placeholder, parroted
        ("Score each criterion from 1 to 10.", "no score found"),  # the rubric, parroted
        ("It deserves a score of 1 to 10.", "no score found"),  # a range is no score
        ("Score: 3\nOn reflection, Score: 8", "conflicting scores"),
        ("7/10 for style, 4/10 for correctness", "conflicting scores"),
        ("```python\nscore = 5\n```", "no score found"),  # code echoed, not a verdict
        ("{'overall': 7, 'x': f(3)}", "no score found"),  # not a literal
        # a set of lists: ast.literal_eval raises TypeError (SmolLM2's judge wrote one on a
        # GPU run, and the feedback stage failed on it)
        ("{[1, 2], [3]} Overall", "no score found"),
        ("7 apples", "no score found"),  # a number in a sentence is no score
        ("42", "outside 1-10"),
    ],
)
def test_out_of_range_or_garbage_is_missing_not_coerced(text: str, fragment: str) -> None:
    scores, error = parse_judgement(text)
    assert scores is None
    assert error is not None and fragment in error


def test_a_json_verdict_is_final_even_when_text_would_parse() -> None:
    """An out-of-range JSON score is not rescued by an `Overall: N` line after it."""
    scores, error = parse_judgement('{"overall": 15}\nOverall: 7')
    assert scores is None and error is not None


def test_the_record_keeps_the_raw_text_of_a_missing_score() -> None:
    sample = _sample("return 1")
    record = judge_record(sample, "gibberish 123")
    assert record.scores is None and record.raw == "gibberish 123" and record.error
    assert record.sample_id == sample.id and record.question_id == "seed/000"


def test_overall_view_maps_1_to_10_onto_0_to_1() -> None:
    assert overall_view(1) == 0.0 and overall_view(10) == 1.0
    assert overall_view(5.5) == pytest.approx(0.5)


def test_the_prompt_shows_the_task_and_the_code_and_asks_for_one_score_line() -> None:
    question = load_bundled("seed")[0]
    prompt = judge_prompt(question, _sample("def sum_of_evens(nums):\n    return 0\n"))
    assert prompt.id == "seed/000/student/0" and prompt.template_hash
    content = prompt.messages[0].content
    assert question.prompt in content and "return 0" in content
    for word in ("Correctness", "readability", "efficiency", "robustness"):
        assert word in content
    assert content.rstrip().endswith("Score: N")  # a placeholder: a parroted reply is no score
    assert parse_judgement(content.rstrip().splitlines()[-1])[0] is None


def _sample(code: str) -> SampleRecord:
    return SampleRecord(
        id="seed/000/student/0", question_id="seed/000", role="student", index=0, text=code,
        code=code, finish_reason="stop", prompt_tokens=1, completion_tokens=1,
    )  # fmt: skip

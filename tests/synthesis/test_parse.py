"""Teacher text -> candidate: the documented format, tolerated variations, and each rejection."""

from __future__ import annotations

import pytest

from iterkd.questions import load_bundled
from iterkd.synthesis import parse_candidate, split_sections, to_question

QUESTION = '''def count_vowels(text: str) -> int:
    """Count the vowels (a, e, i, o, u, any case) in text.

    >>> count_vowels("Hello")
    2
    """
'''
TESTS = """assert count_vowels("Hello") == 2
assert count_vowels("") == 0
assert count_vowels("AEIOU xyz") == 5
"""
SOLUTION = """def count_vowels(text: str) -> int:
    return sum(ch in "aeiou" for ch in text.lower())
"""


def reply(question: str = QUESTION, tests: str = TESTS, solution: str = SOLUTION) -> str:
    return (
        "Sure! Here is a new exercise.\n\n"
        f"### Question\n```python\n{question}```\n\n"
        f"### Tests\n```python\n{tests}```\n\n"
        f"### Solution\n```python\n{solution}```\n"
    )


def test_a_well_formed_reply_parses() -> None:
    result = parse_candidate(reply())
    assert result.reasons == ()
    candidate = result.candidate
    assert candidate is not None
    assert candidate.entry_point == "count_vowels"
    assert candidate.prompt == QUESTION
    assert candidate.asserts == (
        "assert count_vowels('Hello') == 2",
        "assert count_vowels('') == 0",
        "assert count_vowels('AEIOU xyz') == 5",
    )
    assert candidate.solution == SOLUTION


def test_tolerated_variations() -> None:
    """Bold or colon headings, a `pass` body in the question, no fences, imports in the tests,
    a multi-line assert."""
    text = (
        f"## **Question:**\n{QUESTION}    pass\n"
        "#### tests\nimport math\nassert count_vowels(\n    'ab'\n) == 1\n"
        "assert count_vowels('e') == 1\n"
        f"### Reference solution\n{SOLUTION}"
    )
    result = parse_candidate(text)
    assert result.reasons == () and result.candidate is not None
    assert result.candidate.prompt == QUESTION  # the placeholder body is cut off
    assert result.candidate.imports == ("import math",)
    assert result.candidate.asserts == (
        "assert count_vowels('ab') == 1",
        "assert count_vowels('e') == 1",
    )


def test_sections_keep_their_first_occurrence() -> None:
    sections = split_sections("### Tests\nassert f(1) == 1\n### Tests\nassert f(2) == 2\n")
    assert sections == {"tests": "assert f(1) == 1"}


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("", ["empty_text"]),
        ("def f(x):\n    return x\n", ["missing_section", "missing_section", "missing_section"]),
        (reply(tests=""), ["missing_section"]),
        (reply(question="def count_vowels(text:\n"), ["question_syntax_error"]),
        (reply(question="def count_vowels(text):\n    return 0\n"), ["question_no_docstring"]),
        (
            reply(question=QUESTION + "\n" + QUESTION.replace("count_", "n_")),
            ["question_not_one_function"],
        ),
        (reply(tests="x = 1\nassert count_vowels('a') == 1\n"), ["tests_not_asserts"]),
        (reply(tests="assert True\nassert count_vowels('a') == 1\n"), ["tests_without_call"]),
        (reply(tests="assert count_vowels('a') ==\n"), ["tests_syntax_error"]),
        (reply(tests="import math\n"), ["no_tests"]),
        (reply(solution="def count_vowels(text):\n    return (\n"), ["solution_syntax_error"]),
        (reply(solution="def vowels(text):\n    return 0\n"), ["solution_lacks_entry_point"]),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_malformed_replies_are_rejected_with_their_reasons(text: str, codes: list[str]) -> None:
    result = parse_candidate(text)
    assert result.candidate is None
    assert [reason.split(":")[0] for reason in result.reasons] == codes


def test_all_reasons_are_reported_at_once() -> None:
    result = parse_candidate(
        reply(
            tests="print(1)\nassert count_vowels('a') == 1\n", solution="def other():\n    pass\n"
        )
    )
    codes = sorted(reason.split(":")[0] for reason in result.reasons)
    assert codes == ["solution_lacks_entry_point", "tests_not_asserts"]


def test_to_question_builds_an_asserts_form_question() -> None:
    parent = load_bundled("seed")[0]
    candidate = parse_candidate(reply()).candidate
    assert candidate is not None
    question = to_question(
        candidate, question_id="r000/hard/0", parent=parent, bucket="hard",
        tags=["stepping_stone"], asserts=candidate.asserts[:2],
    )  # fmt: skip
    assert question.id == "r000/hard/0" and question.parent_id == parent.id
    assert question.source == "synthesized" and question.difficulty == "hard"
    assert question.tags == [*parent.tags, "stepping_stone"]
    assert question.tests.form == "asserts" and question.tests.asserts == list(
        candidate.asserts[:2]
    )
    assert question.tests.entry_point == "count_vowels" and question.entry_point == "count_vowels"
    assert question.reference_solution == SOLUTION and question.prompt == QUESTION


# ------------------------------------------------------------------ what models really write
def test_headings_without_hashes_and_other_names() -> None:
    text = (
        f"**Problem:**\n```python\n{QUESTION}```\n\n"
        f"Test cases:\n```python\n{TESTS}```\n\n"
        f"2. **Implementation**\n```python\n{SOLUTION}```\n"
    )
    result = parse_candidate(text)
    assert result.reasons == () and result.candidate is not None
    assert result.candidate.prompt == QUESTION and result.candidate.solution == SOLUTION


def test_a_heading_word_inside_a_sentence_or_indented_is_no_heading() -> None:
    sections = split_sections("The solution:\n  Tests:\nassert f(1) == 1\n")
    assert sections == {}


def test_prose_around_unfenced_code_is_left_out() -> None:
    text = (
        f"### Question\nHere is the new exercise:\n{QUESTION}This one is harder.\n\n"
        "### Tests\nSome tests:\n- `assert count_vowels('Hello') == 2`\n"
        "assert count_vowels(\n    ''\n) == 0\nThey all pass.\n\n"
        f"### Solution\nThe solution is:\n{SOLUTION}\nIt counts vowels."
    )
    result = parse_candidate(text)
    assert result.reasons == () and result.candidate is not None
    assert result.candidate.asserts == (
        "assert count_vowels('Hello') == 2",
        "assert count_vowels('') == 0",
    )
    assert result.candidate.prompt == QUESTION and result.candidate.solution == SOLUTION


def test_an_unfenced_assert_that_never_parses_is_a_reason() -> None:
    text = reply().replace(
        f"### Tests\n```python\n{TESTS}```", "### Tests\nassert count_vowels('a' == 1 always\n"
    )
    result = parse_candidate(text)
    assert result.candidate is None
    assert [r.split(":")[0] for r in result.reasons] == ["tests_syntax_error"]


def test_several_test_blocks_are_read_together() -> None:
    text = reply(
        tests="assert count_vowels('a') == 1\n```\n\n```python\nassert count_vowels('') == 0\n"
    )
    result = parse_candidate(text)
    assert result.candidate is not None
    assert len(result.candidate.asserts) == 2


def test_a_question_given_with_its_body_is_cut_at_the_docstring() -> None:
    implemented = QUESTION + '    return sum(ch in "aeiou" for ch in text.lower())\n'
    result = parse_candidate(reply(question=implemented))  # a Solution section too
    assert result.candidate is not None and result.candidate.prompt == QUESTION
    assert result.candidate.solution == SOLUTION and result.notes == ()
    alone = f"### Question\n```python\n{implemented}```\n### Tests\n```python\n{TESTS}```\n"
    result = parse_candidate(alone)  # no Solution section: the question's body is the solution
    assert result.candidate is not None and result.candidate.prompt == QUESTION
    assert result.candidate.solution == implemented
    assert [n.split(":")[0] for n in result.notes] == ["solution_from_question"]


def test_asserts_after_the_solution_are_the_tests_when_there_is_no_tests_section() -> None:
    for tail in (
        TESTS,
        "if __name__ == '__main__':\n" + "".join("    " + t + "\n" for t in TESTS.splitlines()),
    ):
        text = f"### Question\n```python\n{QUESTION}```\n### Solution\n```python\n{SOLUTION}\n{tail}```\n"
        result = parse_candidate(text)
        assert result.candidate is not None, result.reasons
        assert len(result.candidate.asserts) == 3
        assert result.candidate.solution == SOLUTION  # the asserts left the solution
        assert [n.split(":")[0] for n in result.notes] == ["tests_from_solution"]


def test_nothing_is_made_up() -> None:
    """A reply missing a field is rejected, however lenient the reading."""
    prose = "### Question\nWrite a function that counts vowels.\n"
    cases = {
        prose + f"### Tests\n{TESTS}### Solution\n{SOLUTION}": "question_syntax_error",
        f"### Question\n{QUESTION}### Solution\n{SOLUTION}": "missing_section",  # no test
        f"### Question\n{QUESTION}### Tests\n{TESTS}": "missing_section",  # no solution
        f"### Question\n{QUESTION}### Tests\nThe function works.\n### Solution\n{SOLUTION}": "no_tests",
        (
            f"### Question\n{QUESTION}### Tests\n{TESTS}### Solution\n"
            "Loop over the characters and count vowels.\n"
        ): "solution_syntax_error",
        reply(question="def count_vowels(text):\n    return 0\n"): "question_no_docstring",
    }
    for text, code in cases.items():
        result = parse_candidate(text)
        assert result.candidate is None
        assert code in [r.split(":")[0] for r in result.reasons], (code, result.reasons)


def test_a_fenced_question_before_the_first_heading_is_the_question() -> None:
    text = reply().replace("### Question\n", "Here it is:\n")
    result = parse_candidate(text)
    assert result.candidate is not None and result.candidate.prompt == QUESTION
    assert [n.split(":")[0] for n in result.notes] == ["question_without_heading"]
    no_headings = f"```python\n{QUESTION}```\n{TESTS}"  # no heading at all: no section
    assert parse_candidate(no_headings).candidate is None

"""Python tests -> other languages: what translates, what is reported instead, and the types."""

from __future__ import annotations

import pytest

from iterkd.execution.languages import LANGUAGES, Untranslatable
from iterkd.execution.languages.lua import LUA
from iterkd.execution.languages.prompts import localize_prompt
from iterkd.execution.languages.translation import narrow_suite, translate_suite
from iterkd.execution.languages.types import ANY, VType, type_of, unify
from iterkd.execution.models import TestSuite
from iterkd.localize import localize_questions, question_prompt
from iterkd.questions import load_bundled

INT, FLOAT, STR = VType("int"), VType("float"), VType("str")


def asserts(*lines: str, entry: str | None = "f") -> TestSuite:
    return TestSuite(form="asserts", asserts=list(lines), entry_point=entry)


def test_types_unify_as_one_signature_needs() -> None:
    assert type_of([1, 2]) == VType("list", (INT,))
    assert unify(type_of([]), type_of([3])) == VType("list", (INT,))  # [] takes the other's type
    assert unify(INT, FLOAT) == FLOAT
    assert unify(VType("none"), INT) == VType("option", (INT,))
    assert type_of([1, "a"]) == VType("list", (ANY,))  # mixed: fine for Lua, refused by OCaml
    with pytest.raises(Untranslatable, match="mixed"):
        unify(INT, STR)
    with pytest.raises(Untranslatable, match="set"):
        type_of({1, 2})


def test_equality_asserts_become_calls_and_the_expected_value_stays_outside() -> None:
    suite = translate_suite(asserts("assert f([1, 2], 'a') == {'x': (1, 2.5)}"), "f", LUA)
    (case,) = suite.cases
    assert case.call == 'candidate({1, 2}, "a")'
    assert "x" not in case.call  # the expected value is not in what the sandbox runs
    assert case.expectation.literal == {"x": [1, 2.5]}  # Lua's canonical form: tuple = list
    assert case.expected_text == '{["x"] = {1, 2.5}}'
    assert suite.arg_types == (VType("list", (INT,)), STR)


def test_every_supported_check_translates() -> None:
    suite = translate_suite(
        asserts(
            "assert f(1) == 2",
            "assert f(2) != 3",
            "assert abs(f(3) - 0.5) < 1e-6",
            "assert math.isclose(f(4), 0.25)",
            "assert f(5)",
            "assert not f(6)",
            "assert f(7) is None",
        ),
        "f",
        LUA,
    )
    assert len(suite.cases) == 7 and not suite.skipped


def test_what_does_not_translate_is_reported_with_its_reason() -> None:
    suite = translate_suite(
        asserts(
            "assert f(1) == 2",
            "assert f(x=1) == 2",
            "assert f(1) == g(2)",
            "assert 3 in f(1)",
            "assert f({1, 2}) == 2",
            "assert f(1, 2) == 3",
            "assert len(f(1)) == 1",
        ),
        "f",
        LUA,
    )
    reasons = {s.source: s.reason for s in suite.skipped}
    assert [c.source for c in suite.cases] == ["assert f(1) == 2"]
    assert "keyword" in reasons["assert f(x=1) == 2"]
    assert "computes in Python" in reasons["assert f(1) == g(2)"]
    assert "membership" in reasons["assert 3 in f(1)"]
    assert "set" in reasons["assert f({1, 2}) == 2"]
    assert "2 arguments" in reasons["assert f(1, 2) == 3"]
    assert "computes in Python" in reasons["assert len(f(1)) == 1"]


def test_a_suite_with_nothing_translatable_or_helper_code_is_refused() -> None:
    with pytest.raises(Untranslatable, match="no test translates"):
        translate_suite(asserts("assert f(1) == g(2)"), "f", LUA)
    setup = TestSuite(form="asserts", asserts=["assert f(1) == 2"], setup="x = 1")
    with pytest.raises(Untranslatable, match=r"tests\.setup"):
        translate_suite(setup, "f", LUA)
    with pytest.raises(Untranslatable, match="cannot name a Lua function"):
        translate_suite(asserts("assert end(1) == 2", entry="end"), "end", LUA)
    with pytest.raises(Untranslatable, match="cannot name a OCaml function"):
        translate_suite(asserts("assert Area(1) == 2", entry="Area"), "Area", LANGUAGES["ocaml"])


def test_lua_cannot_hold_nil_in_a_table_nor_huge_ints() -> None:
    suite = translate_suite(
        asserts(
            "assert f(1) == [None]", "assert f(1180591620717411303424) == 1", "assert f(3) == 1"
        ),
        "f",
        LUA,
    )
    reasons = " | ".join(s.reason for s in suite.skipped)
    assert len(suite.skipped) == 2 and "64 bits" in reasons and "nil" in reasons


def test_humaneval_form_translates_and_narrows_to_the_entry_point() -> None:
    tests = TestSuite(
        form="humaneval",
        code="def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n",
        entry_point="inc",
    )
    suite = translate_suite(tests, "inc", LUA)
    narrowed = narrow_suite(tests, suite)
    assert narrowed.asserts == ["assert inc(1) == 2", "assert inc(2) == 3"]
    again = translate_suite(narrowed, "inc", LUA).cases
    assert [(c.call, c.expectation) for c in again] == [
        (c.call, c.expectation) for c in suite.cases
    ]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_bundled_questions_localize_with_reasons_for_what_is_left_out(language: str) -> None:
    questions = load_bundled("seed") + load_bundled("heldout")
    kept, dropped = localize_questions(questions, language)
    assert len(kept) + sum(d.tests_skipped == 0 for d in dropped) == len(questions)
    assert len(kept) >= len(questions) * 0.8  # simple-typed asserts: most of them translate
    assert all(d.reason for d in dropped)
    for question in kept:  # a narrowed suite translates whole
        suite = translate_suite(question.tests, question.entry_point, LANGUAGES[language])
        assert not suite.skipped


def test_the_lua_prompt_is_a_header_with_translated_doctests() -> None:
    question = next(q for q in load_bundled("seed") if q.entry_point == "sum_of_evens")
    suite = translate_suite(question.tests, question.entry_point, LUA)
    text = localize_prompt(question.prompt, suite, LUA)
    assert text.splitlines()[-1] == "local function sum_of_evens(nums)"
    assert "-- >>> sum_of_evens({1, 2, 3, 4})" in text and "-- 6" in text
    assert "def " not in text and "[1, 2, 3, 4]" not in text
    assert question_prompt(question, "python") == question.prompt

"""Questions in another language: narrowed tests, left-out questions, prompts and the static view."""

from __future__ import annotations

from iterkd.analysis.luacheck_runner import luacheck_available
from iterkd.localize import (
    dropped_summary,
    has_linter,
    localize_questions,
    missing_linter,
    question_prompt,
    solve_text,
)
from iterkd.questions import load_bundled

QUESTIONS = load_bundled("seed") + load_bundled("heldout")


def test_python_questions_pass_through_untouched() -> None:
    kept, dropped = localize_questions(QUESTIONS, "python")
    assert kept == QUESTIONS and dropped == []
    assert solve_text(QUESTIONS[0], "python").endswith(QUESTIONS[0].prompt)


def test_a_question_loses_only_its_untranslatable_tests_and_says_which() -> None:
    kept, dropped = localize_questions(QUESTIONS, "r")  # R names are strings: no int dict keys
    narrowed = {d.question_id: d for d in dropped}
    assert len(kept) == len(QUESTIONS) and narrowed
    for question in kept:
        original = next(q for q in QUESTIONS if q.id == question.id)
        note = narrowed.get(question.id)
        skipped = note.tests_skipped if note else 0
        assert len(question.tests.asserts) == len(original.tests.asserts) - skipped
    assert all("R" in d.reason or "key" in d.reason for d in dropped)
    assert dropped_summary(dropped)["skipped_tests"] == sum(d.tests_skipped for d in dropped)


def test_a_question_with_no_translatable_test_is_left_out() -> None:
    kept, dropped = localize_questions(QUESTIONS, "ocaml")
    left_out = [d for d in dropped if d.tests_skipped == 0]
    assert [d.question_id for d in left_out] == ["seed/023"]  # flatten: mixed nesting depths
    assert "seed/023" not in {q.id for q in kept}


def test_each_language_gets_its_own_prompt() -> None:
    question = next(q for q in QUESTIONS if q.entry_point == "sum_of_evens")
    headers = {
        "lua": "local function sum_of_evens(nums)",
        "racket": "(define (sum_of_evens nums)",
        "ocaml": "let sum_of_evens (nums : int list) : int =",
        "r": "sum_of_evens <- function(nums) {",
    }
    for language, header in headers.items():
        assert header in question_prompt(question, language), language
        assert f"```{language}" in solve_text(question, language)


def test_the_static_view_is_there_only_where_a_linter_runs() -> None:
    assert has_linter("python") and missing_linter("python") is None
    assert has_linter("lua") == luacheck_available()
    for language in ("racket", "ocaml", "r"):
        assert not has_linter(language)
        assert missing_linter(language).startswith("no linter for")

"""Questions in the run's target language (MultiPL-T): the question stays Python underneath (its
prompt, tests and reference solution), and for another language it is shown and checked through
MultiPL-E-style translation: the prompt becomes the target's header and comments, the tests the
target's calls (`iterkd.execution.languages`).

    kept, dropped = localize_questions(questions, "lua")  # tests narrowed to what translates
    text = question_prompt(question, "lua")               # the Lua prompt
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from iterkd.execution.languages import LANGUAGES, Language, TranslatedSuite, Untranslatable
from iterkd.execution.languages.prompts import localize_prompt
from iterkd.execution.languages.translation import narrow_suite, translate_suite
from iterkd.prompts import DEFAULT_PROMPTS, PromptSet
from iterkd.questions import Question

PYTHON = "python"


class DroppedQuestion(BaseModel):
    """A question left out for a language, or one whose tests were narrowed, and why."""

    model_config = ConfigDict(extra="forbid")

    question_id: str
    language: str
    reason: str
    tests_skipped: int = 0  # asserts that did not translate (the question is kept with the rest)


def language_spec(language: str) -> Language:
    try:
        return LANGUAGES[language]
    except KeyError:
        known = ", ".join([PYTHON, *sorted(LANGUAGES)])
        raise ValueError(f"unknown language {language!r} (known: {known})") from None


def translated_tests(question: Question, language: str) -> TranslatedSuite:
    return translate_suite(question.tests, question.entry_point, language_spec(language))


def localize_questions(
    questions: Sequence[Question], language: str
) -> tuple[list[Question], list[DroppedQuestion]]:
    """The questions that can be asked in `language`, their tests narrowed to the asserts that
    translate; the rest, and every skipped assert, reported."""
    if language == PYTHON:
        return list(questions), []
    kept, notes = [], []
    for question in questions:
        try:
            suite = translated_tests(question, language)
        except Untranslatable as exc:
            notes.append(
                DroppedQuestion(question_id=question.id, language=language, reason=str(exc))
            )
            continue
        if suite.skipped:
            reasons = "; ".join(sorted({s.reason for s in suite.skipped}))
            notes.append(
                DroppedQuestion(
                    question_id=question.id,
                    language=language,
                    reason=f"kept without {len(suite.skipped)} test(s): {reasons}",
                    tests_skipped=len(suite.skipped),
                )
            )
        kept.append(question.model_copy(update={"tests": narrow_suite(question.tests, suite)}))
    return kept, notes


def question_prompt(question: Question, language: str) -> str:
    """What the model is shown: the Python prompt, or its translation into `language`."""
    if language == PYTHON:
        return question.prompt
    return localize_prompt(
        question.prompt, translated_tests(question, language), LANGUAGES[language]
    )


def language_title(language: str) -> str:
    return "Python" if language == PYTHON else language_spec(language).title


def fence_tags(language: str) -> tuple[str, ...]:
    return ("python", "python3", "py") if language == PYTHON else language_spec(language).fences


def has_linter(language: str) -> bool:
    """Whether the static-analysis view exists for answers in `language`: ruff and pylint for
    Python, the language's own linter (luacheck for Lua) where iterkd runs one and it is
    installed."""
    if language == PYTHON:
        return True
    linter = language_spec(language).linter
    return linter is not None and shutil.which(linter) is not None


def missing_linter(language: str) -> str | None:
    """Why the static-analysis view is absent for `language` (None: it is there)."""
    if has_linter(language):
        return None
    spec = language_spec(language)
    if spec.linter is None:
        return f"no linter for {spec.title} in iterkd"
    return f"{spec.linter} (the {spec.title} linter) is not installed"


def dropped_summary(dropped: Sequence[DroppedQuestion]) -> dict[str, int]:
    """Counts for a stage summary: questions left out, and questions kept with fewer tests."""
    return {
        "untranslatable_questions": sum(d.tests_skipped == 0 for d in dropped),
        "questions_with_skipped_tests": sum(d.tests_skipped > 0 for d in dropped),
        "skipped_tests": sum(d.tests_skipped for d in dropped),
    }


# ------------------------------------------------------------------ the prompts' texts
TRANSLATE_TEMPLATE = "translate"


def solve_template(language: str) -> str:
    return "solve" if language == PYTHON else "solve_language"


def solve_text(question: Question, language: str, prompts: PromptSet = DEFAULT_PROMPTS) -> str:
    """The user message asking for a solution in `language`, from the run's `prompts`."""
    if language == PYTHON:
        return prompts.render(solve_template(language), prompt=question.prompt)
    return prompts.render(
        solve_template(language),
        language=language_title(language),
        prompt=question_prompt(question, language),
        fence=fence_tags(language)[0],
    )


def translate_text(
    question: Question, python_source: str, language: str, prompts: PromptSet = DEFAULT_PROMPTS
) -> str:
    """The user message asking the teacher to translate a Python solution into `language`."""
    header = question_prompt(question, language)
    return prompts.render(
        TRANSLATE_TEMPLATE,
        language=language_title(language),
        fence=fence_tags(language)[0],
        python=python_source if python_source.endswith("\n") else python_source + "\n",
        header=header if header.endswith("\n") else header + "\n",
    )

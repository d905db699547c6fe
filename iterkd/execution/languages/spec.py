"""What a target language must say about itself: one `Language` of plain functions per language.

A language module (`lua.py`, `racket.py`, `ocaml.py`, `r.py`) fills one of these; translation
(`translation.py`) and the executor's `ExecRunner` only ever call through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iterkd.execution.languages.types import VType
from iterkd.execution.testforms import Expectation


@dataclass(frozen=True)
class TranslatedCase:
    """One Python assert in the target language: the call the sandbox evaluates, and the check
    the supervisor applies to its value (the expected value never enters the sandbox)."""

    index: int  # position among the suite's compiled cases
    source: str  # the Python assert, for reports
    args: tuple[Any, ...]  # the Python argument values
    call: str  # the call, in the target language, of `candidate`
    expectation: Expectation  # its literal is already in the language's canonical form
    expected_text: str | None  # the expected value in the target language (None: not an ==)


@dataclass(frozen=True)
class SkippedTest:
    index: int
    source: str
    reason: str


@dataclass(frozen=True)
class TranslatedSuite:
    language: str
    entry_point: str
    cases: tuple[TranslatedCase, ...]
    arg_types: tuple[VType, ...]
    return_type: VType
    skipped: tuple[SkippedTest, ...] = ()


@dataclass(frozen=True)
class PromptParts:
    """A Python prompt (signature + docstring) taken apart, for the target's own header."""

    name: str
    params: tuple[str, ...]  # renamed where a Python name is a keyword of the target
    doc_lines: tuple[str, ...]  # the docstring, doctest examples translated or dropped
    arg_types: tuple[VType, ...]
    return_type: VType


@dataclass(frozen=True)
class Language:
    name: str  # the config's name: "lua"
    title: str  # for prompts: "Lua"
    fences: tuple[str, ...]  # code-fence tags of answers: ("lua",)
    interpreter: str  # the command that must be on PATH to run programs
    debian_package: str
    linter: str | None  # None: the static-analysis view is absent for this language
    keywords: frozenset[str]
    typed: bool  # static types: every test's values must unify (else the test is skipped)
    literal: Callable[[Any, VType], str]  # a Python value as a literal, given its unified type
    check_value: Callable[[Any], None]  # raises Untranslatable when the target cannot hold it
    check_types: Callable[[Sequence[VType], VType], None]  # the whole suite's types
    canonical: Callable[[Any], Any]  # expected and returned values, before comparing
    call: Callable[[str, Sequence[str]], str]  # callee + rendered args -> a call expression
    job: Callable[[str, TranslatedSuite], dict[str, Any]]  # source -> {"argv","files","build"}
    prompt: Callable[[PromptParts], str]  # the target's header + comments
    render_tests: Callable[[TranslatedSuite], str]  # a native test file, MultiPL-E style
    comment: str = "--"  # line-comment marker, for the translated docstring
    min_open_files: int = 0  # the interpreter does not start under a lower RLIMIT_NOFILE (R)
    name_pattern: str = r"[A-Za-z_][A-Za-z0-9_]*"  # what the entry point's name may be
    notes: tuple[str, ...] = field(default=())  # how Python values map, for docs and reports


def no_type_check(arg_types: Sequence[VType], return_type: VType) -> None:
    """Dynamic languages: every unified type is fine."""


def native_test_file(
    suite: TranslatedSuite,
    head: Sequence[str],
    check: Callable[[str, str], str],
    comment: Callable[[str], str],
    tail: Sequence[str],
) -> str:
    """A MultiPL-E-style test file: `head`, one `check(call, expected)` line per equality case,
    a `comment` line for every other case (checked as in Python, not by this file), `tail`."""
    lines = list(head)
    for case in suite.cases:
        if case.expected_text is not None:
            lines.append(check(case.call, case.expected_text))
        else:
            lines.append(comment(f"checked as in Python: {case.source}"))
    return "\n".join([*lines, *tail]) + "\n"

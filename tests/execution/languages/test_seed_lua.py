"""Hand-written Lua solutions to the seed questions pass their translated tests in the sandbox."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources

import pytest

from iterkd.execution import Executor, Program, SandboxConfig, Status
from iterkd.questions import load_bundled

if shutil.which("lua5.4") is None:
    if os.environ.get("CI"):
        pytest.fail("lua5.4 is not installed: `make system-deps` installs it", pytrace=False)
    pytest.skip("lua5.4 is not installed (Debian: lua5.4)", allow_module_level=True)

QUESTIONS = load_bundled("seed")


def load_solutions() -> list[dict[str, str]]:
    text = resources.files("iterkd.data").joinpath("seed_lua.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_solutions_cover_every_seed_question_once_in_lua() -> None:
    rows = load_solutions()
    assert [row["question_id"] for row in rows] == [q.id for q in QUESTIONS]
    assert all(row["language"] == "lua" for row in rows)


def test_every_solution_passes_its_translated_tests() -> None:
    solutions = {row["question_id"]: row["solution"] for row in load_solutions()}
    programs = [
        Program(id=q.id, source=solutions[q.id], tests=q.tests, language="lua")
        for q in QUESTIONS
        if q.id in solutions
    ]
    assert len(programs) == len(QUESTIONS)
    with Executor(SandboxConfig()) as executor:
        verdicts = executor.run(programs)
    assert sorted(v.program_id for v in verdicts) == sorted(q.id for q in QUESTIONS)
    failures = {
        v.program_id: (v.status, v.message) for v in verdicts if v.status is not Status.PASSED
    }
    assert not failures, failures

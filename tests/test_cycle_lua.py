"""A round of the (small) tiny default in Lua, in-process: the prompts are Lua, the answers run
under lua5.4 and luacheck scores them, the teacher's Python solutions are translated and kept when
they pass, and the student is trained on Lua."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iterkd.config import load_config
from iterkd.controller import resume_run, start_run
from iterkd.records import read_json, read_jsonl
from iterkd.rundir import RunDir
from iterkd.stages.translate import TranslationRecord
from tests.cycle import SMALL, step_statuses

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu-lua.yaml"
LUA = [
    "rounds=1",
    "teacher={n: 2, temperature: 0.8, max_new_tokens: 160}",
    "translate.n=2",
    "translate.max_new_tokens=160",
]
pytestmark = pytest.mark.skipif(shutil.which("lua5.4") is None, reason="needs lua5.4")


@pytest.fixture(scope="module")
def lua_run(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> RunDir:
    runs = tmp_path_factory.mktemp("runs")
    overrides = [*SMALL, *LUA, f"runs_dir={runs}", "execution.mode=inprocess"]
    cfg = load_config(CONFIG, overrides)
    assert cfg.language == "lua" and cfg.translate.enabled
    start_run(cfg)
    return RunDir(runs / cfg.name)


def test_every_step_completes(lua_run: RunDir) -> None:
    assert set(step_statuses(lua_run.path).values()) == {"complete"}


def test_questions_are_asked_and_answered_in_lua(lua_run: RunDir) -> None:
    teacher = read_json(lua_run.stage_dir(0, "teacher") / "summary.json")
    assert teacher["language"] == "lua" and teacher["untranslatable_questions"] == 0
    verify = read_json(lua_run.stage_dir(0, "verify") / "summary.json")
    assert verify["teacher"]["passed"] > 0  # the tiny teacher learnt a few seed questions in Lua
    assert verify["static_analysis"] == "luacheck"  # Lua's linter is the static view
    verdicts = [
        json.loads(line) for line in (lua_run.stage_dir(0, "verify") / "verdicts.jsonl").open()
    ]
    assert all(v["ruff_score"] is None and v["pylint_score"] is None for v in verdicts)
    scored = [v for v in verdicts if v["status"] != "no_code"]
    assert scored and all(v["lint_score"] is not None for v in scored)
    assert any(v["lint_score"] == 10.0 for v in scored if v["passed"])
    samples = [
        json.loads(line) for line in (lua_run.stage_dir(0, "teacher") / "samples.jsonl").open()
    ]
    passed = {v["sample_id"] for v in verdicts if v["passed"]}
    assert any("local function" in s["code"] for s in samples if s["id"] in passed)


def test_translations_are_verified_deduplicated_and_trained_on(lua_run: RunDir) -> None:
    folder = lua_run.stage_dir(0, "translate")
    summary = read_json(folder / "summary.json")["languages"]["lua"]
    records = read_jsonl(folder / "translations.jsonl", TranslationRecord)
    assert summary["translations"] == len(records) > 0
    kept = [r for r in records if r.outcome == "kept"]
    assert kept and summary["questions_translated"] == len({r.question_id for r in kept})
    assert all(r.status == "passed" and r.tests_passed == r.tests_total > 0 for r in kept)
    duplicates = [r for r in records if r.outcome == "duplicate"]
    ids = {r.id for r in records}
    assert all(r.duplicate_of in ids and r.similarity >= 0.6 for r in duplicates)
    rows = (folder / "samples.jsonl").read_text().splitlines()
    assert len(rows) == len(kept)  # the kept Lua translations are teacher answers for train
    train = read_json(lua_run.stage_dir(0, "train") / "summary.json")
    assert train["checkpoint"] == "adapter" and train["sft_rows"] > 0


def test_evaluation_and_feedback_run_in_lua(lua_run: RunDir) -> None:
    evaluation = read_json(lua_run.stage_dir(0, "evaluate") / "summary.json")
    assert evaluation["language"] == "lua" and evaluation["questions"] == 4
    feedback = read_json(lua_run.stage_dir(0, "feedback") / "summary.json")
    assert feedback["static_analysis"] == "luacheck"
    records = [json.loads(x) for x in (lua_run.stage_dir(0, "feedback") / "feedback.jsonl").open()]
    assert any(r["views"]["lint"] is not None for r in records)
    assert all(r["views"]["ruff"] is None for r in records)


def test_resuming_the_finished_lua_run_runs_nothing(lua_run: RunDir) -> None:
    before = {p: p.stat().st_mtime_ns for p in lua_run.rounds_dir.rglob("*")}
    resume_run(lua_run.path)
    assert {p: p.stat().st_mtime_ns for p in lua_run.rounds_dir.rglob("*")} == before

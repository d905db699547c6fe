"""Two rounds of the (small) tiny default in-process: every step runs for real and leaves what
the next one needs; a finished run resumes to a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iterkd.config import load_config
from iterkd.controller import resume_run, start_run
from iterkd.records import read_json
from iterkd.rundir import STAGES, RunDir, tree_hash
from iterkd.stages.common import StageContext, student_spec
from iterkd.status import format_status
from tests.cycle import CONFIG, SMALL, step_statuses


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> RunDir:
    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(CONFIG, [*SMALL, f"runs_dir={runs}", "execution.mode=inprocess"])
    start_run(cfg)
    return RunDir(runs / cfg.name)


def test_every_step_completes_and_is_recorded(finished_run: RunDir) -> None:
    statuses = step_statuses(finished_run.path)
    assert statuses.pop("baseline/evaluate") == "complete"
    assert statuses == {f"{r:03d}/{s}": "complete" for r in range(2) for s in STAGES}
    state = finished_run.load_state()
    for step in state.steps.values():
        directory = finished_run.path / "rounds" / step.round / step.stage
        assert step.output_hash == tree_hash(directory)
        assert step.metrics == read_json(directory / "summary.json")
        assert step.seconds is not None and step.seconds > 0
    assert not list(finished_run.rounds_dir.rglob("*.tmp"))
    for label in ("baseline", "000", "001"):  # written by the controller as each round ends
        assert (finished_run.rounds_dir / label / "report.html").is_file()
    assert "<svg" in (finished_run.path / "report.html").read_text()


def test_rounds_hand_on_their_outputs(finished_run: RunDir) -> None:
    run = finished_run
    teacher = read_json(run.stage_dir(0, "teacher") / "summary.json")
    assert teacher["questions"] == 6 and teacher["samples"] == 12
    verify = read_json(run.stage_dir(0, "verify") / "summary.json")
    assert verify["teacher"]["passed"] > 0  # the tiny teacher solves part of the seed set
    train = read_json(run.stage_dir(0, "train") / "summary.json")
    # the tiny default fine-tunes the whole student: its checkpoint is a model, not an adapter
    assert train["checkpoint"] == "full" and train["sft_rows"] > 0 and train["pairs"] > 0
    assert (run.stage_dir(0, "train") / "checkpoint" / "model.safetensors").is_file()
    student = read_json(run.stage_dir(1, "student") / "summary.json")
    assert student["student_adapter"] is False
    # round 1 starts from round 0's student
    assert student_after(run, 0) == (run.stage_dir(0, "train") / "checkpoint").resolve()
    next_pool = (run.stage_dir(0, "synthesize") / "next_pool.jsonl").read_text().splitlines()
    round1 = (run.stage_dir(1, "teacher") / "questions.jsonl").read_text().splitlines()
    assert round1 == next_pool
    for label in (None, 0, 1):
        evaluation = read_json(run.stage_dir(label, "evaluate") / "summary.json")
        assert 0.0 <= evaluation["pass@1"] <= evaluation["pass@2"] <= 1.0


def student_after(run: RunDir, round_index: int) -> Path:
    """The student the stages load after `round_index`'s train step (a full model's folder:
    the tiny default fine-tunes the whole student, so no stage summary names it)."""
    cfg = run.load_config()
    ctx = StageContext(run=run, cfg=cfg, round=round_index + 1, stage="student", out=run.path)
    spec = student_spec(ctx, round_index)
    assert spec.adapter is None
    return Path(spec.path)


def test_feedback_buckets_every_question(finished_run: RunDir) -> None:
    lines = (finished_run.stage_dir(0, "feedback") / "feedback.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 6
    assert all(r["bucket"] in ("easy", "medium", "hard") for r in records)


def test_resuming_a_finished_run_runs_nothing(finished_run: RunDir) -> None:
    before = {p: p.stat().st_mtime_ns for p in finished_run.rounds_dir.rglob("*")}
    resume_run(finished_run.path)
    events = finished_run.events()
    last = events[events.index(next(e for e in reversed(events) if e["event"] == "run_resumed")) :]
    assert [e["event"] for e in last] == ["run_resumed", "run_finished"]
    assert {p: p.stat().st_mtime_ns for p in finished_run.rounds_dir.rglob("*")} == before


def test_status_shows_every_round(finished_run: RunDir) -> None:
    text = format_status(finished_run)
    assert "baseline" in text and "000" in text and "001" in text
    assert "FAILED" not in text


def test_a_round_with_nothing_to_do_says_so(tiny_models: Path, tmp_path: Path) -> None:
    """Round 1 gets an empty pool (nothing carried over, no new question asked): every stage
    runs, writes empty files and a note, and round 1 evaluates the student round 0 trained."""
    overrides = [*SMALL, f"runs_dir={tmp_path}", "execution.mode=inprocess", "data.train.limit=2"]
    overrides += ["pool.carry_over=none", "synthesize.per_bucket={easy: 0, medium: 0, hard: 0}"]
    cfg = load_config(CONFIG, overrides)
    start_run(cfg)
    run = RunDir(tmp_path / cfg.name)
    assert read_json(run.stage_dir(0, "synthesize") / "summary.json")["next_pool"]["size"] == 0
    for stage in ("teacher", "student", "feedback"):
        assert "empty pool" in read_json(run.stage_dir(1, stage) / "summary.json")["note"]
    assert read_json(run.stage_dir(1, "train") / "summary.json")["checkpoint"] == "none"
    assert (run.stage_dir(1, "verify") / "verdicts.jsonl").read_text() == ""
    # round 1 trained nothing: it hands on (and evaluates) the student round 0 trained
    assert student_after(run, 1) == (run.stage_dir(0, "train") / "checkpoint").resolve()


def test_auto_promotion_can_be_turned_on_when_resuming(finished_run: RunDir) -> None:
    """`promote` is safe to change on resume; the controller then decides each finished round
    once (an `auto_promote` event per round) without rerunning any step."""
    resume_run(finished_run.path, ["promote.auto=true"])
    decisions = [e for e in finished_run.events() if e["event"] == "auto_promote"]
    assert [e["round"] for e in decisions] == ["000", "001"]
    assert not any(e["event"] == "stage_started" for e in finished_run.events()[-6:])
    promoted = [d for d in decisions if d["outcome"].startswith("promoted")]
    if promoted:  # the tiny student may or may not beat the baseline: both are fine
        lineage = json.loads((finished_run.path / "promoted" / "lineage.json").read_text())
        assert lineage["round"] == int(promoted[-1]["round"])
    resume_run(finished_run.path)  # decided already: no second decision
    assert len([e for e in finished_run.events() if e["event"] == "auto_promote"]) == 2

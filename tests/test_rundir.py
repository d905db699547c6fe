"""Run directory: creation, the controller lock, state reading errors, stage commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iterkd.config import load_config
from iterkd.rundir import STATE_VERSION, RunDir, RunDirError, plan, tree_hash


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "run", load_config(None))


def test_create_freezes_config_and_refuses_to_overwrite(run: RunDir) -> None:
    assert run.load_config() == load_config(None)
    assert run.load_state().version == STATE_VERSION
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(run.path, load_config(None, ["rounds=3"]))


def test_plan_is_baseline_then_rounds_by_stages() -> None:
    steps = plan(2)
    assert steps[0] == (None, "evaluate")
    assert len(steps) == 1 + 2 * 8
    assert steps[1] == (0, "teacher") and steps[-1] == (1, "evaluate")


def _hold_lock(path: Path) -> subprocess.Popen:
    code = (
        "import sys, time\nfrom iterkd.rundir import RunDir\n"
        f"with RunDir({str(path)!r}).lock():\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_second_controller_is_refused_naming_the_first(run: RunDir) -> None:
    holder = _hold_lock(run.path)
    try:
        assert run.locked_by() == holder.pid
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"), run.lock():
            pass
    finally:
        holder.kill()
        holder.wait()
    with run.lock():  # the kernel released the dead holder's lock: a stale file does not block
        assert run.lock_path.read_text().strip() == str(os.getpid())
    assert run.locked_by() is None


def test_corrupted_state_is_named_and_left_alone(run: RunDir) -> None:
    run.state_path.write_text('{"version": 1, "name": ')
    before = run.state_path.read_bytes()
    with pytest.raises(RunDirError, match=r"state\.json is corrupted"):
        run.load_state()
    assert run.state_path.read_bytes() == before


def test_state_of_another_version_is_refused(run: RunDir) -> None:
    state = json.loads(run.state_path.read_text())
    state.update(version=99, iterkd_version="9.0.0")
    run.state_path.write_text(json.dumps(state))
    with pytest.raises(RunDirError, match=r"version 99 was written by iterkd 9.0.0"):
        run.load_state()


def test_state_with_a_wrong_field_names_it(run: RunDir) -> None:
    state = json.loads(run.state_path.read_text())
    state["steps"] = {"000/teacher": {"round": "000", "stage": "teacher", "seed": "x"}}
    run.state_path.write_text(json.dumps(state))
    with pytest.raises(RunDirError, match=r"steps.000/teacher.seed"):
        run.load_state()


def test_stage_commit_is_a_rename(run: RunDir) -> None:
    tmp = run.fresh_tmp_dir(0, "teacher")
    (tmp / "samples.jsonl").write_text("{}\n")
    assert not run.is_complete(0, "teacher")
    (tmp / "summary.json").write_text("{}")
    stale = run.fresh_tmp_dir(0, "student")
    (stale / "half.jsonl").write_text("x")
    assert list(run.fresh_tmp_dir(0, "student").iterdir()) == []  # a killed attempt is discarded
    final = run.commit_stage(0, "teacher")
    assert final == run.stage_dir(0, "teacher") and not tmp.exists()
    assert run.is_complete(0, "teacher")


def test_tree_hash_follows_content(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "f.txt").write_text("same")
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    (tmp_path / "b" / "sub" / "f.txt").write_text("other")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "b")


def test_events_skip_a_torn_last_line(run: RunDir) -> None:
    run.event("one", x=1)
    with open(run.events_path, "a") as f:
        f.write('{"event": "torn')
    assert [e["event"] for e in run.events()] == ["one"]
    assert time.time() - run.events()[0]["time"] < 3600


def test_an_event_after_a_torn_line_is_kept(run: RunDir) -> None:
    run.event("one")
    with open(run.events_path, "a") as f:
        f.write('{"event": "torn')
    run.repair_events()
    run.event("two")
    assert [e["event"] for e in run.events()] == ["one", "two"]

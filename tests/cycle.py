"""A small version of the tiny default for the cycle's integration and chaos tests: the same
stages and models, fewer questions and samples, so that two rounds take about a minute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"

SMALL: list[str] = [
    "data.train.limit=6",
    "data.eval.limit=4",
    "teacher={n: 2, temperature: 0.8, max_new_tokens: 96}",
    "student={n: 2, temperature: 0.8, max_new_tokens: 96}",
    "models.teacher.batch_size=8",
    "models.student.batch_size=8",
    "models.judge.batch_size=8",
    "feedback.judge_max_new_tokens=24",
    "evaluate={n: 2, temperature: 0.8, max_new_tokens: 96, ks: [1, 2]}",
    "train.epochs=1",
    "train.batch_size=4",
    # the tiny default trains SFT only (configs/tiny-cpu.yaml says why); the cycle tests keep the
    # contrastive pairs, so that the whole loss, its log and its resume run in every cycle
    "train.contrastive_weight=0.5",
    "train.save_steps=2",  # trainer checkpoints, so a kill in train can resume from one
    "synthesize.per_bucket={easy: 1, medium: 1, hard: 1}",
    "synthesize.max_new_tokens=96",
]

# Files that record when and how a run went, not what it produced: they differ between an
# interrupted run and an uninterrupted one by design. Everything else under the run must match.
# config.yaml differs only in `runs_dir` and `execution`; reports and TensorBoard logs show
# timings and the run's path by design (they are views of the state, not results).
NOT_COMPARED = (
    "state.json", "events.jsonl", "lock", "logs", "cache", "config.yaml", "tensorboard", "wandb",
    "promoted",
)  # fmt: skip
REPORT_FILES = ("report.json", "report.md", "report.html")


def artifacts(run_dir: Path) -> dict[str, bytes]:
    """Every produced file of a run, by relative path."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if (
            path.is_file()
            and relative.parts[0] not in NOT_COMPARED
            and path.name not in REPORT_FILES
        ):
            out[relative.as_posix()] = path.read_bytes()
    return out


def step_metrics(run_dir: Path) -> dict[str, Any]:
    state = json.loads((run_dir / "state.json").read_text())
    return {key: step["metrics"] for key, step in state["steps"].items()}


def step_statuses(run_dir: Path) -> dict[str, str]:
    state = json.loads((run_dir / "state.json").read_text())
    return {key: step["status"] for key, step in state["steps"].items()}

"""The tiny default distils (issue 14): after round 0's training, the student's pass@1 on the
round's own (train) questions is above its round-start pass@1, by the paired test over questions.

Round 0 of configs/tiny-cpu.yaml as it ships, in-process, up to its feedback stage: the `student`
stage samples the initial student on the round's questions (verified by `verify`), `train`
fine-tunes it on the teacher's verified answers, and `feedback` samples the trained student on the
same questions. Held-out questions are not asserted: the random-init tiny student learns the
answers by heart, it does not generalise (its held-out pass@1 stays 0)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from iterkd.config import load_config
from iterkd.metrics import paired_comparison
from iterkd.questions import Question
from iterkd.records import VerdictRecord, read_json, read_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from tests.cycle import CONFIG

ROUND_0 = ("teacher", "student", "verify", "translate", "train", "feedback")


@pytest.fixture(scope="module")
def round_0(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> RunDir:
    runs = tmp_path_factory.mktemp("runs")
    # the judge only adds a view to the feedback records: the student's samples, their verdicts
    # and the training are those of the tiny default (its seeds depend on run seed, round, stage)
    cfg = load_config(CONFIG, [f"runs_dir={runs}", "models.judge=null"])
    run = RunDir.create(runs / cfg.name, cfg)
    for stage in ROUND_0:
        run_stage(run, cfg, 0, stage)
    return run


def pass_at_1(path: Path, role: str) -> dict[str, tuple[int, float]]:
    """Question id -> (samples, passed / samples) of `role`'s verdicts in `path`."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for verdict in read_jsonl(path, VerdictRecord):
        if verdict.role == role:
            counts[verdict.question_id][0] += 1
            counts[verdict.question_id][1] += int(verdict.passed)
    return {q: (n, passed / n) for q, (n, passed) in counts.items()}


@pytest.mark.slow
def test_the_student_learns_its_train_questions(round_0: RunDir) -> None:
    questions = [
        q.id for q in read_jsonl(round_0.stage_dir(0, "teacher") / "questions.jsonl", Question)
    ]
    before = pass_at_1(round_0.stage_dir(0, "verify") / "verdicts.jsonl", "student")
    after = pass_at_1(round_0.stage_dir(0, "feedback") / "verdicts.jsonl", "student")
    assert len(questions) == 40 and set(before) == set(after) == set(questions)
    assert all(before[q][0] >= 4 and after[q][0] >= 4 for q in questions)  # pass@1 of n >= 4
    comparison = paired_comparison(
        [before[q][1] for q in questions], [after[q][1] for q in questions]
    )
    assert comparison["after"] > comparison["before"], comparison
    assert comparison["p_value"] < 0.05 and comparison["significant"], comparison


@pytest.mark.slow
def test_the_feedback_summary_reports_the_same_change(round_0: RunDir) -> None:
    """What a user reads (feedback's `train_pass`, shown by status and report) is that change."""
    summary = read_json(round_0.stage_dir(0, "feedback") / "summary.json")["train_pass"]
    change = summary["vs_round_start"]
    assert summary["questions"] == 40
    assert change["after"] > change["before"] and change["significant"], change
    assert change["p_value"] < 0.05
    low, high = summary["after"]["ci95"]
    assert low <= summary["after"]["value"] == change["after"] <= high
    print(
        f"train pass@1 {change['before']:.3f} -> {change['after']:.3f}, p={change['p_value']:.2g}"
    )

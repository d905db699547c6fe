"""The train stage with token-level KD (`train.kd`) on the tiny teacher and student, which share
a tokenizer: which rows the KD term covers, the student moving toward the teacher's
distribution, the teacher scored once (a resumed stage reuses its targets and ends in the same
bytes), and a teacher with another tokenizer refused by validate and by the stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from iterkd.checks import validate_config
from iterkd.config import ConfigError, load_config
from iterkd.modeling import load_model
from iterkd.questions import load_bundled
from iterkd.stages import run_stage
from iterkd.stages.common import StageError
from iterkd.training import kd as kd_module
from iterkd.training.kd import TARGETS_FILE
from tests.stages.test_train import (
    OVERRIDES,
    file_bytes,
    finished_and_killed_runs,
    new_run,
    write_round,
)

KD = [
    "train.kd.rows=[verified,unverified,student]",
    "train.kd.top_k=16",
    "train.contrastive_weight=0",
]


def held_out_kl(teacher: Path, student: Path, adapter: Path | None = None) -> float:
    """Mean full-vocabulary KL(teacher || student) over the answer tokens of 6 seed questions
    the stage never trains on."""
    t = load_model(teacher, device="cpu", dtype="float32")
    s = load_model(student, adapter=adapter, device="cpu", dtype="float32")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    total, count = 0.0, 0
    with torch.no_grad():
        for q in load_bundled("seed")[10:16]:
            ids = torch.tensor([tokenizer(q.reference_solution)["input_ids"]])
            pt = torch.log_softmax(t(ids).logits[0], -1)
            ps = torch.log_softmax(s(ids).logits[0], -1)
            total += float((pt.exp() * (pt - ps)).sum())
            count += ids.shape[1]
    return total / count


def test_kd_rows_and_the_student_moves_toward_the_teacher(
    tmp_path: Path, tiny_models: Path
) -> None:
    overrides = [*OVERRIDES, *KD, "train.epochs=8", "train.method=full", "train.kd.top_k=64"]
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    # 3 verified rows (the SFT rows), 3 distinct failed teacher answers, 3 failed student ones
    assert summary["kd"] == {"kind": "forward_kl", "rows": 9, "kd_only_rows": 6, "top_k": 64}
    assert summary["sft_rows"] == 3 and summary["pairs"] == 0
    log = [
        line for line in (run.stage_dir(0, "train") / "train_log.jsonl").read_text().splitlines()
    ]
    assert all('"kd": ' in line and '"kd": null' not in line for line in log)
    targets = torch.load(run.cache_dir / "000" / "train" / TARGETS_FILE, weights_only=True)
    assert len(targets) == 9 and targets[0]["ids"].shape[1] == 64
    before = held_out_kl(tiny_models / "teacher", tiny_models / "student")
    after = held_out_kl(tiny_models / "teacher", run.stage_dir(0, "train") / "checkpoint")
    # the same training without the KD term (SFT on the 3 verified rows only)
    sft_run, sft_cfg = new_run(
        tmp_path / "sft", [o for o in overrides if not o.startswith("train.kd")]
    )
    write_round(sft_run, 0)
    run_stage(sft_run, sft_cfg, 0, "train")
    sft = held_out_kl(tiny_models / "teacher", sft_run.stage_dir(0, "train") / "checkpoint")
    assert after < 0.9 * before and after < sft


def test_a_resumed_kd_stage_does_not_score_again(
    tmp_path: Path, tiny_models: Path, monkeypatch
) -> None:
    overrides = [*OVERRIDES, *KD, "train.max_steps=12", "train.save_steps=2", "train.batch_size=2"]
    reference, run, cfg = finished_and_killed_runs(tmp_path, overrides)

    def no_scoring(*args, **kwargs):
        raise AssertionError("the teacher was scored again on resume")

    monkeypatch.setattr(kd_module, "teacher_targets", no_scoring)
    run_stage(run, cfg, 0, "train")
    assert file_bytes(run.stage_dir(0, "train")) == file_bytes(reference.stage_dir(0, "train"))


def test_a_teacher_with_another_tokenizer_is_refused(tmp_path: Path, tiny_models: Path) -> None:
    from transformers import AutoTokenizer

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_models / "teacher", teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    tokenizer.add_tokens(["<only-in-the-teacher>"])
    tokenizer.save_pretrained(teacher)
    overrides = [*OVERRIDES, *KD, f"models.teacher.path={teacher}"]
    with pytest.raises(ConfigError, match=r"train.kd: teacher .*teacher and student .* have "
                       r"different tokenizers \(\d+ and \d+ tokens, 1 token-id pairs"):  # fmt: skip
        validate_config(load_config(None, overrides), "cfg.yaml")
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    with pytest.raises(StageError, match="have different tokenizers"):
        run_stage(run, cfg, 0, "train")
    assert not (run.stage_dir(0, "train") / "checkpoint").exists()


def test_kd_in_two_processes_through_accelerate_launch(tmp_path: Path, tiny_models: Path) -> None:
    """DDP over gloo on CPU: the KD term through the DDP wrapper, the targets read from the
    job's folder by every process."""
    overrides = [*OVERRIDES, *KD, "train.num_processes=2", "train.epochs=2", "train.batch_size=4"]
    run, cfg = new_run(tmp_path / "run", overrides)
    (run.path / "logs").mkdir(exist_ok=True)
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    assert summary["processes"] == 2 and summary["kd"]["rows"] == 9
    log = (run.stage_dir(0, "train") / "train_log.jsonl").read_text().splitlines()
    assert log and all('"kd": null' not in line for line in log)


def test_a_round_without_a_passing_teacher_answer_still_trains_the_kd_term(
    tmp_path: Path, tiny_models: Path
) -> None:
    """No teacher answer passed: SFT has nothing, but `rows: [unverified]` gives the KD term the
    teacher's answers to questions that have no verified one (their prompts included)."""
    overrides = [*OVERRIDES, *KD, "train.kd.rows=[unverified]", "train.method=full"]
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0, teacher_passes=False)
    summary = run_stage(run, cfg, 0, "train")
    assert summary["sft_rows"] == 0 and summary["kd"]["kd_only_rows"] >= 3
    assert summary["objective"] == "kd" and summary["checkpoint"] == "full"
    assert summary["steps"] > 0 and summary["loss_first"] is not None
    student = load_model(tiny_models / "student", device="cpu", dtype="float32")
    trained = load_model(run.stage_dir(0, "train") / "checkpoint", device="cpu", dtype="float32")
    assert any(
        not torch.equal(a, b)
        for a, b in zip(student.parameters(), trained.parameters(), strict=True)
    )
    # without the KD term the same round has nothing to train, and says so
    plain, plain_cfg = new_run(tmp_path / "plain", [*OVERRIDES, "train.method=full"])
    write_round(plain, 0, teacher_passes=False)
    assert run_stage(plain, plain_cfg, 0, "train")["note"] == (
        "no teacher answer passed its tests: nothing to train"
    )

"""The train stage end to end on the tiny student, from hand-written teacher/student/verify
folders: what it writes, the empty round, determinism, and a second round continuing the first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from iterkd.config import RunConfig, load_config
from iterkd.modeling import load_model, load_tokenizer
from iterkd.questions import Question, load_bundled
from iterkd.records import SampleRecord, VerdictRecord, read_json, write_json, write_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from iterkd.stages.common import StageError

OVERRIDES = [
    "train.epochs=4",
    "train.batch_size=8",  # one step per epoch: 3 rows + 3 pairs
    "train.learning_rate=5e-3",
    "train.torch_threads=1",
]


def record(question: Question, role: str, index: int, code: str) -> SampleRecord:
    return SampleRecord(
        id=f"{question.id}/{role}/{index}",
        question_id=question.id,
        role=role,
        index=index,
        text=f"Here it is:\n```python\n{code}```\n",
        code=code,
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=10,
    )


def verdict(sample: SampleRecord, passed: bool) -> VerdictRecord:
    return VerdictRecord(
        sample_id=sample.id,
        question_id=sample.question_id,
        role=sample.role,
        index=sample.index,
        status="passed" if passed else "failed",
        passed=passed,
        failure_kind=None if passed else "wrong_answer",
        tests_passed=1 if passed else 0,
        tests_total=1,
    )


def write_round(
    run: RunDir, round_index: int, *, teacher_passes: bool = True, first: int = 0
) -> None:
    """Three seed questions, from the `first`. Teacher: the reference solution, the same
    reformatted (a duplicate) and a wrong answer; student: a body returning None (a fault) and
    the reference (passed)."""
    questions = load_bundled("seed")[first : first + 3]
    teacher, student, verdicts = [], [], []
    for q in questions:
        reformatted = q.reference_solution.replace("    return", "    return  ")
        answers = [
            (q.reference_solution, True),
            (reformatted, True),
            (q.prompt + "    return 0\n", False),
        ]
        for index, (code, passed) in enumerate(answers):
            teacher.append(record(q, "teacher", index, code))
            verdicts.append(verdict(teacher[-1], passed and teacher_passes))
        for index, (code, passed) in enumerate(
            [(q.prompt + "    return None\n", False), (q.reference_solution, True)]
        ):
            student.append(record(q, "student", index, code))
            verdicts.append(verdict(student[-1], passed))
    files = {
        "teacher": {"questions.jsonl": questions, "samples.jsonl": teacher},
        "student": {"samples.jsonl": student},
        "verify": {"verdicts.jsonl": verdicts},
        "translate": {"samples.jsonl": [], "verdicts.jsonl": []},  # off: nothing translated
    }
    for stage, contents in files.items():
        directory = run.stage_dir(round_index, stage)
        directory.mkdir(parents=True)
        for name, records in contents.items():
            write_jsonl(directory / name, records)
        write_json(directory / "summary.json", {"questions": len(questions)})


def new_run(path: Path, overrides: list[str] = OVERRIDES) -> tuple[RunDir, RunConfig]:
    cfg = load_config(None, overrides)
    return RunDir.create(path, cfg), cfg


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models: Path) -> tuple[RunDir, RunConfig, dict]:
    """A run whose round 0 has been trained."""
    run, cfg = new_run(tmp_path_factory.mktemp("trained") / "run")
    write_round(run, 0)
    return run, cfg, run_stage(run, cfg, 0, "train")


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_trains_a_lora_adapter_that_loads_and_changes_the_student(trained, tiny_models):
    run, _, summary = trained
    out = run.stage_dir(0, "train")
    assert summary["checkpoint"] == "adapter" and not summary["continued_adapter"]
    # one row per question (the duplicate is dropped); a pair per question (the passed
    # student answer is no fault)
    assert (summary["questions"], summary["sft_rows"], summary["pairs"]) == (3, 3, 3)
    assert summary["steps"] == 4 and "note" not in summary
    assert summary["loss_last"] < summary["loss_first"]
    assert summary["margin_first"] is not None and summary["margin_last"] is not None
    assert read_json(out / "summary.json") == summary
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4]
    assert set(log[0]) == {
        "step",
        "epoch",
        "loss",
        "nll",
        "sfim",
        "contrastive",
        "margin",
        "kd",
        "learning_rate",
        "grad_norm",
    }
    checkpoint = out / "checkpoint"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    base = load_model(tiny_models / "student", device="cpu")
    tuned = load_model(tiny_models / "student", adapter=checkpoint, device="cpu")
    ids = torch.tensor([[1, 50, 60, 70, 80]])
    assert not torch.allclose(logits(base, ids), logits(tuned, ids))


def test_two_runs_write_identical_bytes(trained, tmp_path):
    """The second run is another process (as the controller runs stages), with another string
    hash seed: nothing may depend on set order or on anything else of one process."""
    first, _, _ = trained
    run, _ = new_run(tmp_path / "run")
    write_round(run, 0)
    script = (
        "import sys; from iterkd.rundir import RunDir; from iterkd.stages import run_stage; "
        "run = RunDir(sys.argv[1]); run_stage(run, run.load_config(), 0, 'train')"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(run.path)], check=True, env=env)
    assert file_bytes(run.stage_dir(0, "train")) == file_bytes(first.stage_dir(0, "train"))


def test_no_passed_teacher_answer_trains_nothing(tmp_path, tiny_models):
    run, cfg = new_run(tmp_path / "run")
    write_round(run, 0, teacher_passes=False)
    summary = run_stage(run, cfg, 0, "train")
    out = run.stage_dir(0, "train")
    assert summary["checkpoint"] == "none" and "no teacher answer passed" in summary["note"]
    assert (summary["sft_rows"], summary["pairs"], summary["steps"]) == (0, 0, 0)
    assert summary["loss_first"] is None and summary["margin_last"] is None
    assert not (out / "checkpoint").exists()
    assert (out / "train_log.jsonl").read_text() == ""


def test_sft_only_when_the_contrastive_weight_is_zero(tmp_path, tiny_models):
    run, cfg = new_run(
        tmp_path / "run", [*OVERRIDES, "train.contrastive_weight=0", "train.epochs=1"]
    )
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    assert (summary["sft_rows"], summary["pairs"], summary["steps"]) == (3, 0, 1)
    assert summary["margin_first"] is None


def test_a_second_round_continues_the_first_rounds_adapter(trained, tmp_path, tiny_models):
    first, cfg, round0 = trained
    run = RunDir(tmp_path / "run")
    shutil.copytree(first.path, run.path)
    write_round(run, 1)
    round1 = run_stage(run, cfg, 1, "train")
    assert round1["checkpoint"] == "adapter" and round1["continued_adapter"]
    # round 1 starts where round 0 ended, on the same data: its first loss is already below
    # round 0's first (a fresh adapter would start from round 0's first loss)
    assert round1["loss_first"] < round0["loss_first"] - 0.1
    config = json.loads(
        (run.stage_dir(1, "train") / "checkpoint" / "adapter_config.json").read_text()
    )
    assert Path(config["base_model_name_or_path"]) == tiny_models / "student"  # not stacked
    adapters = [run.stage_dir(r, "train") / "checkpoint" for r in (0, 1)]
    assert file_bytes(adapters[0]) != file_bytes(adapters[1])
    load_model(tiny_models / "student", adapter=adapters[1], device="cpu")


def test_replay_trains_the_verified_answers_of_questions_the_pool_dropped(trained, tmp_path):
    """Round 1 asks seed questions 1-3; question 0, mastered and dropped from the pool, comes
    back with its verified round-0 answer (the reformatted duplicate is one answer); questions
    1 and 2, asked again, are not replayed."""
    first, _, _ = trained
    run = RunDir(tmp_path / "run")
    shutil.copytree(first.path, run.path)
    write_round(run, 1, first=1)
    cfg = load_config(None, [*OVERRIDES, "train.replay_rows_per_question=4"])
    summary = run_stage(run, cfg, 1, "train")
    assert summary["replayed"] == {"rows": 1, "questions": 1}
    assert summary["sft_rows"] == 4 and summary["questions_with_rows"] == 4
    assert summary["questions"] == 3 and summary["steps"] > 0
    plain = RunDir(tmp_path / "plain")
    shutil.copytree(first.path, plain.path)
    write_round(plain, 1, first=1)
    summary = run_stage(plain, load_config(None, OVERRIDES), 1, "train")
    assert summary["replayed"] is None and summary["sft_rows"] == 3


# ------------------------------------------------------------------ recipes
def test_hardest_pairing_with_dpo_scores_faults_with_the_round_start_student(tmp_path, tiny_models):
    overrides = [
        *OVERRIDES,
        "train.pairing=hardest",
        "train.contrastive_loss=dpo",
        "train.epochs=1",
    ]
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    assert (summary["objective"], summary["pairing"]) == ("dpo", "hardest")
    assert (summary["sft_rows"], summary["pairs"], summary["negatives"]) == (3, 3, 3)
    examples = json.loads((run.cache_dir / "000" / "train" / "examples.json").read_text())
    refs = [e["ref"] for e in examples["examples"] if e.get("chosen")]
    # summed log-probs of chosen and rejected under the untrained student: negative numbers
    assert len(refs) == 3 and all(len(r) == 2 and max(r) < 0 for r in refs)


def test_infonce_groups_several_faults_of_a_question(tmp_path, tiny_models):
    overrides = [*OVERRIDES, "train.contrastive_loss=infonce", "train.epochs=1"]
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    # a second distinct fault per question
    student = run.stage_dir(0, "student") / "samples.jsonl"
    verdicts = run.stage_dir(0, "verify") / "verdicts.jsonl"
    extra = [
        record(q, "student", 2, q.prompt + "    return -1\n") for q in load_bundled("seed")[:3]
    ]
    student.write_text(student.read_text() + "".join(s.model_dump_json() + "\n" for s in extra))
    lines = "".join(verdict(s, False).model_dump_json() + "\n" for s in extra)
    verdicts.write_text(verdicts.read_text() + lines)
    summary = run_stage(run, cfg, 0, "train")
    assert (summary["objective"], summary["pairs"], summary["negatives"]) == ("infonce", 3, 6)
    assert summary["margin_last"] is not None


def test_sfim_rows_with_full_fine_tuning_add_the_sentinels(tmp_path, tiny_models):
    overrides = [*OVERRIDES, "train.method=full", "train.sfim_ratio=1", "train.epochs=1"]
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    assert summary["sfim_rows"] == 3 and summary["checkpoint"] == "full"
    log = [json.loads(line) for line in (run.stage_dir(0, "train") / "train_log.jsonl").open()]
    assert any(row["sfim"] is not None for row in log)
    checkpoint = run.stage_dir(0, "train") / "checkpoint"
    saved = load_tokenizer(checkpoint, need_chat_template=True)
    ids = [saved.convert_tokens_to_ids(t) for t in ("<fim_prefix>", "<fim_middle>", "<fim_suffix>")]
    model = load_model(checkpoint, device="cpu")
    assert all(isinstance(i, int) for i in ids)
    assert model.get_input_embeddings().num_embeddings == len(saved) > max(ids)


def test_sfim_with_lora_on_a_tokenizer_without_sentinels_is_refused(tmp_path, tiny_models):
    run, cfg = new_run(tmp_path / "run", [*OVERRIDES, "train.sfim_ratio=0.5"])
    write_round(run, 0)
    with pytest.raises(StageError, match=r"train\.method: full"):
        run_stage(run, cfg, 0, "train")


# ------------------------------------------------------------------ processes
def test_two_processes_through_accelerate_launch_train_one_adapter(tmp_path, tiny_models):
    """DDP over gloo on CPU: the same code path a multi-GPU machine takes."""
    overrides = [*OVERRIDES, "train.num_processes=2", "train.epochs=2", "train.batch_size=4"]
    run, cfg = new_run(tmp_path / "run", overrides)
    (run.path / "logs").mkdir(exist_ok=True)
    write_round(run, 0)
    summary = run_stage(run, cfg, 0, "train")
    assert summary["checkpoint"] == "adapter" and summary["processes"] == 2
    # 6 examples, 4 per process and step: 2 processes take 8 a step, so 1 step an epoch
    assert summary["steps"] == 2
    assert (run.stage_dir(0, "train") / "checkpoint" / "adapter_model.safetensors").is_file()
    assert (run.path / "logs" / "000-train-accelerate.log").is_file()


def kill_train_after_first_checkpoint(run: RunDir) -> None:
    """Round 0's train stage in a subprocess, SIGKILLed once its checkpoint-2 is written."""
    script = (
        "import sys; from iterkd.rundir import RunDir; from iterkd.stages import run_stage; "
        "run = RunDir(sys.argv[1]); run_stage(run, run.load_config(), 0, 'train')"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(run.path)])
    state = run.cache_dir / "000" / "train" / "trainer" / "checkpoint-2" / "trainer_state.json"
    while not state.is_file() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed mid-training, not finished
    assert not run.is_complete(0, "train")


def finished_and_killed_runs(
    tmp_path: Path, overrides: list[str]
) -> tuple[RunDir, RunDir, RunConfig]:
    """The train stage run to its end, and the same stage in another run killed after its
    first trainer checkpoint (to be resumed by the caller)."""
    reference, cfg = new_run(tmp_path / "reference", overrides)
    write_round(reference, 0)
    run_stage(reference, cfg, 0, "train")
    run, cfg = new_run(tmp_path / "run", overrides)
    write_round(run, 0)
    kill_train_after_first_checkpoint(run)
    return reference, run, cfg


def test_a_killed_train_stage_resumes_from_its_trainer_checkpoint(tmp_path, tiny_models):
    overrides = [*OVERRIDES, "train.max_steps=12", "train.save_steps=2", "train.batch_size=2"]
    reference, run, cfg = finished_and_killed_runs(tmp_path, overrides)
    run_stage(run, cfg, 0, "train")
    assert file_bytes(run.stage_dir(0, "train")) == file_bytes(reference.stage_dir(0, "train"))


def test_a_failed_accelerate_launch_is_one_error_naming_its_log(tmp_path, tiny_models):
    broken = tmp_path / "accelerate.yaml"
    broken.write_text("distributed_type: NOT_A_BACKEND\nnum_processes: 2\n")
    overrides = [*OVERRIDES, "train.num_processes=2", f"train.accelerate_config={broken}"]
    run, cfg = new_run(tmp_path / "run", overrides)
    (run.path / "logs").mkdir(exist_ok=True)
    write_round(run, 0)
    with pytest.raises(StageError, match="accelerate launch exited with") as error:
        run_stage(run, cfg, 0, "train")
    log = (run.path / "logs" / "000-train-accelerate.log").read_text()
    assert "NOT_A_BACKEND" in log and "NOT_A_BACKEND" in str(error.value)
    assert not run.is_complete(0, "train")
    assert not (run.stage_dir(0, "train") / "checkpoint").exists()

"""The train stage's working folder: a folder made from other inputs is emptied before use, so
no trainer checkpoint of another training is ever resumed; the built examples round-trip."""

from __future__ import annotations

from pathlib import Path

from iterkd.training.data import EncodeStats
from iterkd.training.job import TrainJob


def test_a_folder_of_other_inputs_is_emptied_and_one_of_the_same_kept(tmp_path: Path):
    job = TrainJob(tmp_path / "train", "inputs-a")
    checkpoint = job.trainer_dir / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    TrainJob(tmp_path / "train", "inputs-a")  # the same inputs: a resume
    assert checkpoint.is_dir()
    TrainJob(tmp_path / "train", "inputs-b")  # other inputs: nothing of the old training stays
    assert not job.trainer_dir.exists()
    assert (tmp_path / "train" / "inputs.sha256").read_text() == "inputs-b"


def test_kept_examples_come_back_with_their_statistics(tmp_path: Path):
    job = TrainJob(tmp_path / "train", "inputs")
    assert job.cached_examples() is None
    examples = [{"sft": {"input_ids": [1, 2], "labels": [-100, 2]}, "weight": 0.5}]
    stats = EncodeStats(sft_rows=1, completion_tokens=1, questions_with_rows={"q1"})
    job.keep_examples(examples, stats)
    assert job.cached_examples() == (examples, stats)
    job.keep_examples([], EncodeStats())  # written once: a resumed stage keeps the first
    assert job.cached_examples() == (examples, stats)

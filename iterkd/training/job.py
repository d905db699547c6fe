"""A train stage's working folder, outside the stage's output so that it outlives a kill:

    <run>/cache/<round>/train/
        inputs.sha256      what the folder was made from (the stage's inputs and settings)
        examples.json      the built examples with their statistics (scoring is not redone)
        tokenizer/         the student's tokenizer as trained (SFIM may have added sentinels)
        job.json           what `iterkd.training.launch` needs to train in other processes
        outcome.json       steps and log of a finished multi-process training
        trainer/           the Trainer's checkpoints (`checkpoint-N/`), the newest resumed

A folder made from other inputs is emptied first: a checkpoint is only ever resumed by the same
training.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from iterkd.atomic import atomic_write_text
from iterkd.training.data import EncodeStats, Example


class TrainJob:
    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.dir = directory
        marker = directory / "inputs.sha256"
        if not (marker.is_file() and marker.read_text() == fingerprint):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            atomic_write_text(marker, fingerprint)

    @property
    def trainer_dir(self) -> Path:
        return self.dir / "trainer"

    @property
    def tokenizer_dir(self) -> Path:
        return self.dir / "tokenizer"

    def cached_examples(self) -> tuple[list[Example], EncodeStats] | None:
        path = self.dir / "examples.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        stats = EncodeStats(**data["stats"])
        stats.questions_with_rows = set(stats.questions_with_rows)
        stats.questions_with_pairs = set(stats.questions_with_pairs)
        return data["examples"], stats

    def keep_examples(self, examples: list[Example], stats: EncodeStats) -> None:
        path = self.dir / "examples.json"
        if path.is_file():
            return
        fields = asdict(stats)
        for name in ("questions_with_rows", "questions_with_pairs"):
            fields[name] = sorted(fields[name])
        atomic_write_text(path, json.dumps({"examples": examples, "stats": fields}))

    def write(self, name: str, data: dict[str, Any]) -> None:
        atomic_write_text(self.dir / name, json.dumps(data, indent=1))

    def read(self, name: str) -> dict[str, Any]:
        return json.loads((self.dir / name).read_text())

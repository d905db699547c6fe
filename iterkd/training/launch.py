"""Training in one process or in several through `accelerate launch`.

`train_in_process` loads the student, trains it (resuming the job's newest checkpoint) and saves
it. With `num_processes > 1` the train stage writes the job (`TrainJob`: examples, tokenizer,
job.json) and runs

    accelerate launch [--config_file F | --multi_gpu] --num_processes N -m iterkd.training.launch JOB

Every process runs `main` on the same job: the Trainer shards the batches (DDP, or FSDP /
DeepSpeed as the accelerate config says), the main process saves the checkpoint and writes
outcome.json. On a machine without a GPU the processes train on CPU over gloo (`use_cpu`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from iterkd.config import TrainConfig
from iterkd.training.job import TrainJob


class LaunchError(RuntimeError):
    """`accelerate launch` failed; the message holds the end of its output."""


def train_in_process(job: TrainJob, spec: dict[str, Any], examples: list[Any]) -> dict[str, Any]:
    """Load, train, save (main process only) and return {kind, processes, steps, log,
    resumed_from_step}."""
    from transformers import AutoTokenizer

    from iterkd.training.kd import TARGETS_FILE, load_targets
    from iterkd.training.trainer import load_student, save_checkpoint, torch_threads, train_student

    cfg = TrainConfig.model_validate(spec["train"])
    tokenizer = AutoTokenizer.from_pretrained(job.tokenizer_dir, local_files_only=True)
    with torch_threads(cfg.torch_threads):
        model = load_student(
            Path(spec["base"]),
            spec["adapter"],
            cfg,
            seed=spec["seed"],
            bf16=spec["bf16"],
            tokenizer=tokenizer,
        )
        outcome = train_student(
            model,
            examples,
            cfg,
            seed=spec["seed"],
            output_dir=job.trainer_dir,
            tokenizer=tokenizer,
            use_cpu=spec["use_cpu"],
            bf16=spec["bf16"],
            kd_targets=load_targets(job.dir / TARGETS_FILE),
        )
        kind = None
        if _is_main_process():
            kind = save_checkpoint(outcome.model, tokenizer, Path(spec["checkpoint_dir"]))
    return {
        "kind": kind,
        "processes": _process_count(),
        "steps": outcome.steps,
        "log": outcome.log,
        "resumed_from_step": outcome.resumed_from_step,
    }


def _process_count() -> int:
    from accelerate import PartialState

    return PartialState().num_processes


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def launch_command(job: TrainJob, cfg: TrainConfig) -> list[str]:
    """The `accelerate launch` command line of a multi-process job."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.accelerate_config:
        command += ["--config_file", cfg.accelerate_config]
    else:
        # plain DDP; on a machine without a GPU the processes use gloo on CPU
        command += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no"]
        command += ["--dynamo_backend", "no"]
    command += ["--num_processes", str(cfg.num_processes), "--main_process_port", "0"]
    return [*command, "-m", "iterkd.training.launch", str(job.dir)]


def launch(job: TrainJob, cfg: TrainConfig, log_path: Path) -> dict[str, Any]:
    """Run the job in `cfg.num_processes` processes; their output goes to `log_path`."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        done = subprocess.run(launch_command(job, cfg), stdout=log, stderr=log, env=env)
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise LaunchError(f"accelerate launch exited with {done.returncode}; its log ends:\n{tail}")
    return job.read("outcome.json")


def main(job_dir: str) -> None:
    directory = Path(job_dir)
    job = TrainJob(directory, (directory / "inputs.sha256").read_text())
    spec = job.read("job.json")
    cached = job.cached_examples()
    if cached is None:
        raise SystemExit(f"{directory} has no examples.json")
    outcome = train_in_process(job, spec, cached[0])
    if _is_main_process():
        job.write("outcome.json", outcome)


if __name__ == "__main__":
    main(sys.argv[1])

"""The controller: drives a run through its steps (baseline evaluation, then rounds x stages),
one subprocess per step by default, recording every transition in `state.json` and
`events.jsonl`. Resume is the same loop: a step whose folder is complete is skipped.

Why one process per step: GPU memory is returned between a vLLM engine and a trainer, a crash
stays in its step, and training can be launched across GPUs. `execution.mode: inprocess` runs
steps in the controller's process (tests, debugging).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from iterkd.atomic import atomic_write_text
from iterkd.config import (
    TINY_PREFIX,
    ConfigError,
    RunConfig,
    apply_overrides,
    config_diff,
    config_hash,
    config_to_dict,
    load_config,
    parse_config,
    unsafe_changes,
)
from iterkd.gguf_import import GGUF_PREFIX
from iterkd.records import RecordError, read_json
from iterkd.rundir import (
    BASELINE,
    RunDir,
    RunDirError,
    RunState,
    StepState,
    plan,
    round_label,
    step_key,
    step_seed,
    tree_hash,
)


class ControllerError(RuntimeError):
    """A step failed or the run cannot go on; the message names the step and where to look."""


# ------------------------------------------------------------------ entry points
def start_run(cfg: RunConfig, run_dir: str | Path | None = None) -> RunState:
    """Create `runs/<name>/` (or `run_dir`) with the frozen config and run every step. A run
    that exists already is resumed if its config is the same, else refused with the diff."""
    path = Path(run_dir) if run_dir is not None else Path(cfg.runs_dir) / cfg.name
    run = RunDir(path)
    if run.state_path.exists():
        run.load_state()
        _reconcile(run, cfg)
        return drive(run, "run_resumed")
    RunDir.create(path, cfg)
    return drive(run, "run_started")


def resume_run(
    run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), config: str | None = None
) -> RunState:
    """Finish a run from where it stopped. A config file and overrides may be given: only keys
    declared safe (`SAFE_TO_CHANGE`) may differ from the frozen config."""
    run = RunDir(run_dir)
    run.load_state()  # refuses a corrupted or foreign state before anything is touched
    if config is not None or overrides:
        base = load_config(config, overrides) if config else _frozen_with(run, list(overrides))
        _reconcile(run, base)
    return drive(run, "run_resumed")


def drive(run: RunDir, why: str) -> RunState:
    with run.lock():
        cfg = run.load_config()
        state = run.load_state()
        run.check_config_file(state)
        run.repair_events()
        run.event(why, pid=os.getpid(), rounds=cfg.rounds)
        models_ready = False
        for round_index, stage in plan(cfg.rounds):
            step = _step_state(state, cfg, round_index, stage)
            if run.is_complete(round_index, stage):
                if step.status != "complete":  # killed between the rename and the state write
                    _record_complete(run, state, step, started=step.started)
            else:
                if not models_ready:
                    _prepare_models(cfg)
                    models_ready = True
                _execute(run, cfg, state, step, round_index)
                if stage == "evaluate":  # the round is done: its report, and the run's
                    _write_reports(run, round_index)
            if stage == "evaluate" and round_index is not None and cfg.promote.auto:
                _auto_promote(run, round_index)
        run.event("run_finished", steps=len(state.steps))
        return state


def run_step_in_this_process(run_dir: str, label: str, stage: str) -> int:
    """Body of `python -m iterkd.stages`: run one step, leave an error file when it fails."""
    from iterkd.stages import StageError

    run = RunDir(run_dir)
    round_index = None if label == BASELINE else int(label)
    error_file = _error_file(run, round_index, stage)
    error_file.unlink(missing_ok=True)
    try:
        _timed_stage(run, run.load_config(), round_index, stage)
    except (StageError, RecordError, RunDirError, ValueError, OSError) as exc:
        atomic_write_text(error_file, f"{type(exc).__name__}: {exc}\n")
        print(f"iterkd: step {label}/{stage} failed: {exc}", file=sys.stderr)
        return 3
    except BaseException:
        atomic_write_text(error_file, traceback.format_exc())
        raise
    return 0


# ------------------------------------------------------------------ steps
def _step_state(state: RunState, cfg: RunConfig, round_index: int | None, stage: str) -> StepState:
    key = step_key(round_index, stage)
    if key not in state.steps:
        seed = step_seed(cfg.seed, round_index, stage)
        state.steps[key] = StepState(round=round_label(round_index), stage=stage, seed=seed)
    return state.steps[key]


def _execute(
    run: RunDir, cfg: RunConfig, state: RunState, step: StepState, round_index: int | None
) -> None:
    step.status, step.error = "running", None
    step.attempts += 1
    step.started = time.time()
    step.input_hash = _input_hash(state, step)
    run.write_state(state)
    run.event("stage_started", step=f"{step.round}/{step.stage}", attempt=step.attempts)
    _say(f"{step.round}/{step.stage}: started (attempt {step.attempts})")
    try:
        if cfg.execution.mode == "inprocess":
            _run_in_process(run, cfg, round_index, step.stage)
        else:
            _run_subprocess(run, round_index, step.stage)
    except Exception as exc:
        step.status, step.error = "failed", str(exc)
        step.finished = time.time()
        run.write_state(state)
        run.event("stage_failed", step=f"{step.round}/{step.stage}", error=str(exc)[:2000])
        raise ControllerError(f"step {step.round}/{step.stage} failed: {exc}") from None
    _record_complete(run, state, step, started=step.started)


def _timed_stage(run: RunDir, cfg: RunConfig, round_index: int | None, stage: str) -> None:
    """Run a step and log how long its own work took: the rest of the step's time is the
    controller's overhead (process start, imports, state writes), measured by the benchmark."""
    from iterkd.stages import run_stage

    started = time.monotonic()
    run_stage(run, cfg, round_index, stage)
    seconds = round(time.monotonic() - started, 3)
    run.event("stage_work", step=f"{round_label(round_index)}/{stage}", seconds=seconds)


def _run_in_process(run: RunDir, cfg: RunConfig, round_index: int | None, stage: str) -> None:
    _timed_stage(run, cfg, round_index, stage)


def _run_subprocess(run: RunDir, round_index: int | None, stage: str) -> None:
    label = round_label(round_index)
    command = [sys.executable, "-m", "iterkd.stages", str(run.path), label, stage]
    command.append(str(os.getpid()))  # the step dies with this controller (PDEATHSIG)
    # fixed thread counts: MKL/OpenMP may otherwise use fewer threads on a loaded machine, which
    # changes float summation order and so a trained checkpoint's bytes
    env = {"MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"} | dict(os.environ)
    code = subprocess.call(command, stdin=subprocess.DEVNULL, env=env)
    if code != 0:
        error_file = _error_file(run, round_index, stage)
        detail = error_file.read_text().strip() if error_file.is_file() else ""
        last = detail.splitlines()[-1] if detail else f"exit code {code} (killed or crashed)"
        raise ControllerError(f"{last} (details: {error_file})" if detail else last)


def _record_complete(run: RunDir, state: RunState, step: StepState, started: float | None) -> None:
    directory = run.stage_dir(None if step.round == BASELINE else int(step.round), step.stage)
    step.metrics = read_json(directory / "summary.json")
    step.output_hash = tree_hash(directory)
    step.input_hash = step.input_hash or _input_hash(state, step)
    step.status, step.error = "complete", None
    step.finished = time.time()
    step.seconds = round(step.finished - started, 3) if started else None
    run.write_state(state)
    run.event("stage_finished", step=f"{step.round}/{step.stage}", seconds=step.seconds)
    _say(
        f"{step.round}/{step.stage}: complete"
        + (f" in {step.seconds:.1f} s" if step.seconds else "")
    )


def _write_reports(run: RunDir, round_index: int | None) -> None:
    """rounds/<r>/report.{json,md,html} and the run-level report. A report that cannot be
    written is a line, not a failed run: `iterkd report` writes it again from the files."""
    from iterkd.report import write_reports

    try:
        written = write_reports(run.path, round=round_label(round_index))
    except (ValueError, OSError) as exc:
        _say(f"report of round {round_label(round_index)} not written: {exc}")
        return
    for note in written.notes:
        _say(note)


def _auto_promote(run: RunDir, round_index: int) -> None:
    """Promote the round's student when it passes the gate (`promote.auto`). Runs while this
    controller holds the lock; never raises: a refused or failed promotion is a line and an
    event, the run goes on, and the previous promotion stays intact."""
    label = round_label(round_index)
    if any(e["event"] == "auto_promote" and e.get("round") == label for e in run.events()):
        return  # decided before this controller was (re)started
    from iterkd.promote import auto_promote

    _say(auto_promote(run, round_index))


def _say(message: str) -> None:
    print(f"iterkd: {message}", file=sys.stderr, flush=True)


def _input_hash(state: RunState, step: StepState) -> str:
    """The config and the outputs of every earlier step: what this step's output depends on."""
    digest = hashlib.sha256(state.config_hash.encode())
    for key, earlier in state.steps.items():
        if earlier is step:
            break
        digest.update(f"{key}={earlier.output_hash}".encode())
    return digest.hexdigest()[:16]


def _error_file(run: RunDir, round_index: int | None, stage: str) -> Path:
    return run.path / "logs" / f"{round_label(round_index)}-{stage}.error"


def _prepare_models(cfg: RunConfig) -> None:
    """Build the tiny models (and import `gguf:` models) once, here, rather than racing to do
    it inside a step."""
    specs = [cfg.models.teacher, cfg.models.student, cfg.models.judge]
    if any(s is not None and (s.path or "").startswith(TINY_PREFIX) for s in specs):
        from iterkd.tiny_models import ensure_tiny_models

        ensure_tiny_models()
    paths = [s.path or "" for s in specs if s is not None and s.backend != "openai"]
    paths.append(cfg.synthesize.perplexity_model or "")
    for path in paths:
        if path.startswith(GGUF_PREFIX):
            from iterkd.gguf_import import ensure_imported

            ensure_imported(path[len(GGUF_PREFIX) :])


# ------------------------------------------------------------------ resume with changes
def _frozen_with(run: RunDir, overrides: list[str]) -> RunConfig:
    data: dict[str, Any] = config_to_dict(run.load_config())
    apply_overrides(data, overrides)
    return parse_config(data, f"{run.config_path} + overrides")


def _reconcile(run: RunDir, new_cfg: RunConfig) -> None:
    """Accept `new_cfg` for an existing run if it changes only safe keys; refuse with the diff."""
    old, new = config_to_dict(run.load_config()), config_to_dict(new_cfg)
    refused = unsafe_changes(old, new)
    if refused:
        raise ConfigError(
            f"{run.path}: the run exists with another config; these keys cannot change on an "
            "existing run (start a new run, e.g. with name=...):\n  " + "\n  ".join(refused)
        )
    if old == new:
        return
    with run.lock():
        state = run.load_state()
        run.write_config(new_cfg, state)
        state.config_hash = config_hash(new_cfg)
        run.write_state(state)
        run.event("config_changed", diff=config_diff(old, new))

"""The run directory: everything a run is, on disk, written so that a SIGKILL at any moment
leaves it resumable.

    runs/<name>/
      config.yaml         the resolved config, frozen when the run is created
      state.json          manifest: per step (round x stage) status, times, hashes, seed, metrics
      events.jsonl        append-only log (one JSON object per line)
      lock                flock held by the running controller; holds its pid
      cache/              generation caches (content-hash keyed), per round and stage
      rounds/<round>/<stage>/   a stage's outputs; written as <stage>.tmp/ and renamed when complete

A stage directory without `.tmp` is complete by construction (the rename is the commit), so a
controller killed between the rename and the state write finds the stage done on resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iterkd import __version__
from iterkd.atomic import atomic_write_text, fsync_dir, fsync_tree
from iterkd.config import ConfigError, RunConfig, config_hash, config_to_dict, parse_config
from iterkd.generation.base import derive_seed

STATE_VERSION = 1
STAGES: tuple[str, ...] = (
    "teacher",
    "student",
    "verify",
    "translate",
    "train",
    "feedback",
    "synthesize",
    "evaluate",
)
BASELINE = "baseline"  # the round label of the initial student's evaluation

StepStatus = Literal["pending", "running", "complete", "failed"]


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message names the file and what is wrong."""


class StepState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round: str
    stage: str
    status: StepStatus = "pending"
    seed: int
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    input_hash: str | None = None
    output_hash: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RunState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    iterkd_version: str = __version__
    name: str
    created: float
    config_hash: str
    config_file_hash: str | None = Field(
        None, description="sha256 of config.yaml as written: a hand edit is refused on resume"
    )
    steps: dict[str, StepState] = Field(default_factory=dict, description='key: "000/teacher"')


def round_label(round_index: int | None) -> str:
    """`baseline` for the evaluation before round 0, else the zero-padded round number."""
    return BASELINE if round_index is None else f"{round_index:03d}"


def step_seed(run_seed: int, round_index: int | None, stage: str) -> int:
    """A step's seed, from (run seed, round, stage) only: a rerun of a step draws the same
    numbers. Recorded in state.json and used by the step itself."""
    return derive_seed(run_seed, round_label(round_index), stage)


def step_key(round_index: int | None, stage: str) -> str:
    return f"{round_label(round_index)}/{stage}"


def plan(rounds: int) -> list[tuple[int | None, str]]:
    """Every step of a run, in order: the baseline evaluation, then rounds x stages."""
    return [(None, "evaluate")] + [(r, s) for r in range(rounds) for s in STAGES]


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.state_path = self.path / "state.json"
        self.events_path = self.path / "events.jsonl"
        self.lock_path = self.path / "lock"
        self.cache_dir = self.path / "cache"
        self.rounds_dir = self.path / "rounds"

    # ------------------------------------------------------------ creation and opening
    @classmethod
    def create(cls, path: str | Path, cfg: RunConfig) -> RunDir:
        """A new run directory with the frozen config and an empty state (refused if one exists)."""
        run = cls(path)
        if run.state_path.exists() or run.config_path.exists():
            raise RunDirError(f"{run.path} already holds a run: use `iterkd resume {run.path}`")
        run.path.mkdir(parents=True, exist_ok=True)
        state = RunState(name=cfg.name, created=time.time(), config_hash=config_hash(cfg))
        run.write_config(cfg, state)
        run.write_state(state)
        return run

    def write_config(self, cfg: RunConfig, state: RunState) -> None:
        """Freeze `cfg` as config.yaml and remember the file's hash in `state` (not written)."""
        text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
        atomic_write_text(self.config_path, text)
        state.config_file_hash = hashlib.sha256(text.encode()).hexdigest()

    def check_config_file(self, state: RunState) -> None:
        """Refuse a config.yaml edited by hand since the run froze it. Compared as a file, not
        as a parsed config: a newer iterkd adding a key with a default is no edit."""
        text = self.config_path.read_bytes()
        if state.config_file_hash and hashlib.sha256(text).hexdigest() != state.config_file_hash:
            raise RunDirError(
                f"{self.config_path} was edited by hand; change a run's config with "
                "`iterkd resume RUN key=value` (safe keys only) or start a new run"
            )

    def load_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise RunDirError(f"{self.path}: no config.yaml: not an iterkd run directory")
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RunDirError(f"{self.config_path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{self.config_path}: the top level must be a mapping")
        try:
            return parse_config(data, str(self.config_path))
        except ConfigError as exc:
            raise RunDirError(str(exc)) from None

    def load_state(self) -> RunState:
        if not self.state_path.is_file():
            raise RunDirError(f"{self.path}: no state.json: not an iterkd run directory")
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{self.state_path} is corrupted (not JSON: {exc})") from None
        if isinstance(raw, dict) and raw.get("version") != STATE_VERSION:
            raise RunDirError(
                f"{self.state_path}: state version {raw.get('version')!r} was written by "
                f"iterkd {raw.get('iterkd_version', '?')}; this iterkd ({__version__}) reads "
                f"version {STATE_VERSION} only"
            )
        try:
            return RunState.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RunDirError(f"{self.state_path} is corrupted ({where}: {first['msg']})") from None

    def write_state(self, state: RunState) -> None:
        atomic_write_text(self.state_path, state.model_dump_json(indent=1) + "\n")

    # ------------------------------------------------------------ events and lock
    def event(self, kind: str, **fields: Any) -> None:
        """Append one line; a line torn by a kill is the last one and is skipped by readers."""
        record = {"time": round(time.time(), 3), "event": kind, **fields}
        line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def repair_events(self) -> None:
        """End a line torn by a kill, so the next event starts on a line of its own."""
        if self.events_path.exists() and self.events_path.stat().st_size:
            with open(self.events_path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held for the controller's lifetime. The kernel drops an flock when its holder dies,
        so a lock file left by a killed controller never blocks a resume."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise RunDirError(
                    f"{self.path} is in use by another controller (pid {holder}); "
                    "wait for it to finish or stop it"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

    def locked_by(self) -> int | None:
        """The pid of a live controller holding the lock, or None."""
        if not self.lock_path.exists():
            return None
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)
        return None

    # ------------------------------------------------------------ stage directories
    def stage_dir(self, round_index: int | None, stage: str) -> Path:
        return self.rounds_dir / round_label(round_index) / stage

    def stage_tmp_dir(self, round_index: int | None, stage: str) -> Path:
        final = self.stage_dir(round_index, stage)
        return final.with_name(final.name + ".tmp")

    def stage_cache(self, round_index: int | None, stage: str, name: str) -> Path:
        return self.cache_dir / round_label(round_index) / f"{stage}-{name}.jsonl"

    def fresh_tmp_dir(self, round_index: int | None, stage: str) -> Path:
        """An empty `<stage>.tmp/`: what a killed attempt left there is discarded (its
        expensive parts live in the caches, outside it)."""
        tmp = self.stage_tmp_dir(round_index, stage)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_stage(self, round_index: int | None, stage: str) -> Path:
        """fsync every file of `<stage>.tmp/`, then rename it to `<stage>/`: the commit point."""
        tmp, final = self.stage_tmp_dir(round_index, stage), self.stage_dir(round_index, stage)
        fsync_tree(tmp)
        if final.exists():  # only a stage reset by `--redo` leaves one; never a complete one
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(final.parent)
        return final

    def is_complete(self, round_index: int | None, stage: str) -> bool:
        return (self.stage_dir(round_index, stage) / "summary.json").is_file()


def tree_hash(directory: Path) -> str:
    """sha256 over relative paths and bytes of every file: equal trees, equal hashes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]

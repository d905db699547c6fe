"""What a report reads from a run directory, read so that nothing missing or torn crashes it.

A report is shown for runs that are half done, killed, or hand-edited: every reader here returns
None (and records why in `problems`) rather than raising, so the report can show what exists and
mark what does not. Only a path that is no run at all is an error (`ReportError`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iterkd.rundir import BASELINE, STAGES, RunDir, RunState, StepState, round_label


class ReportError(ValueError):
    """A report cannot be made as asked; the message names the run or round and what is wrong."""


_LABEL = re.compile(r"^(baseline|\d{3,})$")


@dataclass(frozen=True)
class StageInfo:
    """One step as a report sees it: the state's word, checked against the folder on disk.
    `summary` is the folder's summary.json, or the state's copy when the folder is gone
    (status "missing"): sections built from the summary alone still show."""

    status: str  # complete, failed, running, interrupted, pending, missing
    seconds: float | None = None
    attempts: int = 0
    error: str | None = None
    summary: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def why_missing(self, stage: str) -> str:
        detail = f": {self.error}" if self.error else ""
        return f"{stage} {self.status}{detail}"


@dataclass
class RunSource:
    """The run directory, its state and its config's round count, read once."""

    run: RunDir
    state: RunState
    rounds_planned: int | None
    controller_pid: int | None = None  # a live controller holding the run's lock
    problems: list[str] = field(default_factory=list)
    # each step read once: the run report reads a round's summaries for its own sections and
    # for every other round's (pass@k deltas, the rounds' Holm families)
    _stages: dict[tuple[str, str], StageInfo] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> RunSource:
        run = RunDir(path)
        if not run.state_path.is_file():
            raise ReportError(f"{run.path}: no state.json: not an iterkd run directory")
        state = run.load_state()  # a corrupted state is a RunDirError (a ValueError): no report
        return cls(run, state, _planned_rounds(run), controller_pid=run.locked_by())

    # ---------------------------------------------------------------- rounds and stages
    def started_rounds(self) -> list[str]:
        """Rounds with a step in the state or a folder on disk, baseline first."""
        labels = {s.round for s in self.state.steps.values()}
        if self.run.rounds_dir.is_dir():
            labels |= {p.name for p in self.run.rounds_dir.iterdir() if _LABEL.match(p.name)}
        return sort_labels(labels)

    def all_rounds(self) -> list[str]:
        """Started rounds plus those the config plans that have not started yet."""
        planned = {round_label(None)} | {round_label(r) for r in range(self.rounds_planned or 0)}
        return sort_labels(planned | set(self.started_rounds()))

    def stages_of(self, label: str) -> tuple[str, ...]:
        return ("evaluate",) if label == BASELINE else STAGES

    def stage(self, label: str, stage: str) -> StageInfo:
        if (label, stage) not in self._stages:
            self._stages[label, stage] = self._read_stage(label, stage)
        return self._stages[label, stage]

    def _read_stage(self, label: str, stage: str) -> StageInfo:
        step = self.state.steps.get(f"{label}/{stage}")
        folder = self.stage_dir(label, stage)
        on_disk = (folder / "summary.json").is_file()
        summary = self.json(label, stage, "summary.json", quiet=not on_disk)
        if summary is None and step is not None and step.status == "complete":
            summary = step.metrics or None  # the folder is gone: the state kept its summary
        return StageInfo(
            status=_status(step, on_disk, self._tmp_exists(label, stage), self.controller_pid),
            seconds=step.seconds if step else None,
            attempts=step.attempts if step else 0,
            error=step.error if step else None,
            summary=summary if isinstance(summary, dict) else None,
        )

    def stage_dir(self, label: str, stage: str) -> Path:
        return self.run.rounds_dir / label / stage

    def _tmp_exists(self, label: str, stage: str) -> bool:
        return (self.run.rounds_dir / label / f"{stage}.tmp").is_dir()

    # ---------------------------------------------------------------- files
    def json(self, label: str, stage: str, name: str, quiet: bool = False) -> Any:
        path = self.stage_dir(label, stage) / name
        if not path.is_file():
            if not quiet:
                self.problems.append(f"{label}/{stage}/{name}: missing")
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.problems.append(f"{label}/{stage}/{name}: not valid JSON ({exc})")
            return None

    def jsonl(self, label: str, stage: str, name: str) -> list[dict[str, Any]] | None:
        """The file's objects; a line that is not a JSON object is skipped and noted."""
        path = self.stage_dir(label, stage) / name
        if not (path.parent / "summary.json").is_file():
            return None  # the stage is not complete: its status says so, not each file
        if not path.is_file():
            self.problems.append(f"{label}/{stage}/{name}: missing")
            return None
        rows: list[dict[str, Any]] = []
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            row = _json_object(line)
            if row is None and line.strip():
                self.problems.append(f"{label}/{stage}/{name} line {number}: not a JSON object")
            elif row is not None:
                rows.append(row)
        return rows

    def info(self) -> dict[str, Any]:
        return {
            "name": self.state.name,
            "path": str(self.run.path),
            "config_hash": self.state.config_hash,
            "iterkd_version": self.state.iterkd_version,
            "rounds_planned": self.rounds_planned,
            "controller_pid": self.controller_pid,
        }


def sort_labels(labels: set[str] | list[str]) -> list[str]:
    """baseline first, then rounds in number order."""
    return sorted(labels, key=lambda s: (-1, 0) if s == BASELINE else (0, int(s)))


def normalize_label(value: int | str | None) -> str:
    """A round as the user or the controller names it (0, "0", "000", "baseline") -> label."""
    if value is None or value == BASELINE:
        return BASELINE
    text = str(value).strip()
    if not text.isdigit():
        raise ReportError(f"round {value!r}: expected a round number or 'baseline'")
    return round_label(int(text))


def _status(step: StepState | None, on_disk: bool, tmp: bool, controller: int | None) -> str:
    if on_disk:
        return "complete"  # the rename is the commit, whatever the state had time to record
    if step is None:
        return "interrupted" if tmp and controller is None else "pending"
    if step.status == "complete":
        return "missing"  # recorded complete, but its folder is gone
    if step.status == "running" and controller is None:
        return "interrupted"  # no live controller: killed mid-step
    return step.status


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _planned_rounds(run: RunDir) -> int | None:
    """The config's `rounds`, read leniently: a report never needs the whole config valid."""
    try:
        data = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    rounds = data.get("rounds") if isinstance(data, dict) else None
    return rounds if isinstance(rounds, int) else None

"""The cycle as the CLI runs it (one subprocess per step), uninterrupted and under SIGKILL.

The reference run goes straight through. The chaos run is SIGKILLed at 12 points chosen at
random (fixed seed) inside every stage kind: sometimes the whole process group (controller,
step, sandbox workers), sometimes the controller alone (its step must then die with it), each
followed by `iterkd resume`. The finished chaos run must hold byte-identical artifacts and equal
metrics. Not compared, by design: state.json times/attempts, events.jsonl, logs, and the caches'
line order (a resumed stage appends the prompts it had not reached).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from iterkd.rundir import STAGES, RunDir
from tests.cycle import CONFIG, SMALL, artifacts, step_metrics, step_statuses

TARGETS = [
    "baseline/evaluate",
    *(f"000/{stage}" for stage in STAGES),
    "001/teacher",
    "001/verify",
    "001/train",
    "001/feedback",
]


def _cli(*args: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "iterkd.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group: killpg reaches the step too
        )


def _run_to_end(*args: str, log: Path) -> None:
    process = _cli(*args, log=log)
    assert process.wait() == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Path:
    runs = tmp_path_factory.mktemp("reference")
    _run_to_end("run", str(CONFIG), *SMALL, f"runs_dir={runs}", log=runs / "log.txt")
    return runs / "tiny-cpu"


def test_two_rounds_as_subprocesses(reference: Path) -> None:
    statuses = step_statuses(reference)
    steps = 1 + 2 * len(STAGES)  # the baseline evaluation, then two rounds
    assert len(statuses) == steps and set(statuses.values()) == {"complete"}
    starts = [e for e in RunDir(reference).events() if e["event"] == "stage_started"]
    assert len(starts) == steps  # each step ran exactly once
    assert not _stage_processes(reference)


def _stage_processes(run_dir: Path) -> list[int]:
    """Pids of step processes still working on this run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"iterkd.stages" in cmdline and str(run_dir).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _wait_for_start(run_dir: Path, step: str, since: float, process: subprocess.Popen) -> bool:
    while process.poll() is None:
        events = RunDir(run_dir).events()
        if any(
            e["event"] == "stage_started" and e["step"] == step and e["time"] >= since
            for e in events
        ):
            return True
        time.sleep(0.05)
    return False


def _running_step(run_dir: Path) -> str | None:
    running = [k for k, s in step_statuses(run_dir).items() if s == "running"]
    return running[0] if running else None


def _kill(process: subprocess.Popen, whole_group: bool) -> None:
    if whole_group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGKILL)
    process.wait()


def _wait_for_orphans(run_dir: Path) -> list[int]:
    deadline = time.monotonic() + 30  # a polling limit for the orphan check, not a test timeout
    while (left := _stage_processes(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(
    reference: Path, tmp_path: Path
) -> None:
    durations = {k: s["seconds"] for k, s in json.loads((reference / "state.json").read_text())["steps"].items()}  # fmt: skip
    rng = random.Random(20261122)
    runs, log = tmp_path / "runs", tmp_path / "log.txt"
    run_dir = runs / "tiny-cpu"
    args = ["run", str(CONFIG), *SMALL, f"runs_dir={runs}"]
    landed: list[str] = []
    rerun: dict[str, int] = {}  # step -> kills that left it incomplete (it must run again)
    for number, target in enumerate(TARGETS):
        if run_dir.exists() and step_statuses(run_dir).get(target) == "complete":
            continue  # an earlier kill landed past it
        since = time.time()
        process = _cli(*args, log=log)
        if not _wait_for_start(run_dir, target, since, process):
            continue  # already done (a kill landed late): the next target
        time.sleep(rng.uniform(0.05, 0.9) * durations[target])
        step = _running_step(run_dir)
        _kill(process, whole_group=number % 2 == 0)
        assert not _wait_for_orphans(run_dir), "a step outlived its controller"
        if step is not None:
            landed.append(step)
            label, stage = step.split("/")
            if not (run_dir / "rounds" / label / stage / "summary.json").is_file():
                rerun[step] = rerun.get(step, 0) + 1  # else: renamed, the state not yet written
        args = ["resume", str(run_dir)]
    print("SIGKILLed during:", landed)
    assert len(landed) >= 10
    assert {step.split("/")[1] for step in landed} == set(STAGES)

    _run_to_end("resume", str(run_dir), log=log)
    assert set(step_statuses(run_dir).values()) == {"complete"}
    state = json.loads((run_dir / "state.json").read_text())
    for step, kills in rerun.items():
        assert state["steps"][step]["attempts"] >= 1 + kills
    produced, expected = artifacts(run_dir), artifacts(reference)
    assert produced.keys() == expected.keys()
    differing = [name for name in expected if produced[name] != expected[name]]
    assert not differing, f"files differ from the uninterrupted run: {differing}"
    assert _close(step_metrics(run_dir), step_metrics(reference))

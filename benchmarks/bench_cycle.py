"""The tiny default's 2 rounds, end to end, as `iterkd run` runs them.

Measures, in one invocation:
- wall time of `iterkd run configs/tiny-cpu.yaml` (one subprocess per step), with a per-step
  breakdown from state.json; the tiny models are built first and timed apart (`--fresh-models`
  builds them into an empty cache, as on a fresh machine);
- the controller's overhead: per step, its wall time minus the work the step reported
  (`stage_work` events), i.e. process start, imports, config/state reads and writes; and the
  same run in-process as a baseline (ratio subprocess / in-process);
- `iterkd resume` on the finished run (median of 5).
Results are appended to benchmarks/RESULTS.md with the command, date and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _recording import date, machine, record

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"


def _iterkd(*args: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "iterkd.cli", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.monotonic() - started


def _steps(run_dir: Path) -> list[tuple[str, float, float | None]]:
    state = json.loads((run_dir / "state.json").read_text())
    work: dict[str, float] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "stage_work":
            work[event["step"]] = event["seconds"]
    return [(key, step["seconds"], work.get(key)) for key, step in state["steps"].items()]


def _build_models(env: dict[str, str]) -> float:
    started = time.monotonic()
    code = "from iterkd.tiny_models import ensure_tiny_models; ensure_tiny_models()"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh-models", action="store_true", help="build tiny models anew")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process run")
    args = parser.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="iterkd-bench-cycle-") as tmp:
        if args.fresh_models:
            env["ITERKD_CACHE_DIR"] = str(Path(tmp) / "cache")
        build_s = _build_models(env)
        runs = Path(tmp) / "runs"
        wall = _iterkd("run", str(CONFIG), f"runs_dir={runs}", env=env)
        run_dir = runs / "tiny-cpu"
        steps = _steps(run_dir)
        resume = [_iterkd("resume", str(run_dir), env=env) for _ in range(5)]
        inprocess = None
        if not args.no_inprocess:
            inprocess = _iterkd("run", str(CONFIG), f"runs_dir={runs}", "name=inprocess",
                                "execution.mode=inprocess", env=env)  # fmt: skip
        report = _report(args, build_s, wall, steps, statistics.median(resume), inprocess)
    print(report)
    record(report)


def _report(args, build_s, wall, steps, resume_s, inprocess) -> str:
    work = sum(w for _, _, w in steps if w is not None)
    step_total = sum(s for _, s, _ in steps)
    overhead = wall - work
    command = "python benchmarks/bench_cycle.py" + (" --fresh-models" if args.fresh_models else "")
    lines = [
        "## Distillation cycle: the tiny default, 2 rounds (`iterkd run configs/tiny-cpu.yaml`)",
        "",
        f"- Command: `{command}`",
        f"- Date: {date()}",
        f"- Machine: {machine()}",
        f"- Tiny models: {'built from scratch' if args.fresh_models else 'already built'} "
        f"in {build_s:.1f} s",
        f"- **Wall time of the 2 rounds (+ baseline evaluation): {wall:.1f} s** "
        f"(goal <= 300 s after install; with the model build: {wall + build_s:.1f} s)",
        f"- Controller overhead (wall - work the steps reported): {overhead:.1f} s = "
        f"{overhead / wall:.1%} of the run; per step {overhead / len(steps):.2f} s",
        f"- `iterkd resume` of the finished run: {resume_s:.2f} s (median of 5; goal <= 1 s)",
    ]
    if inprocess is not None:
        lines.append(f"- Same run in-process: {inprocess:.1f} s; subprocess / in-process = "
                     f"{wall / inprocess:.2f}x")  # fmt: skip
    lines += ["", "| step | wall s | work s | overhead s |", "|---|---:|---:|---:|"]
    for key, seconds, step_work in steps:
        cell = f"{step_work:.1f}" if step_work is not None else "-"
        over = f"{seconds - step_work:.1f}" if step_work is not None else "-"
        lines.append(f"| {key} | {seconds:.1f} | {cell} | {over} |")
    lines.append(f"| all steps | {step_total:.1f} | {work:.1f} | {step_total - work:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

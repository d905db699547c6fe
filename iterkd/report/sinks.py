"""Per-round metrics for experiment trackers: TensorBoard (`<run>/tensorboard/`) when the
`tensorboard` package is installed (`pip install 'iterkd[report]'`), W&B when `wandb` is. Neither
is ever required: without them the reports are complete and a note says what was skipped.

Step numbers: the baseline is step 0 and round r is step r + 1, so every tracker shows the same
x axis as the reports.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"


def round_scalars(entry: dict[str, Any]) -> dict[str, float]:
    """One round of the run report as flat `group/name` scalars (only what was measured)."""
    out: dict[str, Any] = {}
    evaluation = entry.get("evaluation") or {}
    out |= {f"eval/pass@{k}": v for k, v in (evaluation.get("pass_at") or {}).items()}
    out["eval/greedy_pass@1"] = evaluation.get("greedy")
    out |= _interval_scalars(evaluation.get("intervals") or {})
    verify = entry.get("verify") or {}
    for role in ("teacher", "student"):
        out[f"verify/{role}_pass_rate"] = (verify.get(role) or {}).get("pass_rate")
    feedback = entry.get("feedback") or {}
    views = feedback.get("views") or {}
    out |= {f"feedback/{name}_mean": view.get("mean") for name, view in views.items()}
    out |= {f"feedback/{b}": n for b, n in (feedback.get("buckets") or {}).items()}
    judge = feedback.get("judge")
    if isinstance(judge, dict):
        out["feedback/judge_missing"] = judge.get("missing")
    train_pass = feedback.get("train_pass") or {}
    for side in ("before", "after"):
        out[f"train_questions/pass@1_{side}"] = (train_pass.get(side) or {}).get("value")
    funnel = (entry.get("synthesis") or {}).get("funnel") or []
    out |= {f"synthesis/{step}": n for step, n in funnel}
    training = (entry.get("training") or {}).get("summary") or {}
    out |= {f"train/{k}": training.get(k) for k in ("loss_first", "loss_last", "margin_last")}
    return {k: float(v) for k, v in out.items() if _number(v)}


def _interval_scalars(intervals: dict[str, Any]) -> dict[str, Any]:
    """Each interval as two scalars beside its value: trackers plot numbers, not pairs."""
    out = {}
    for key, bounds in intervals.items():
        name = "greedy_pass@1" if key == "greedy" else f"pass@{key}"
        if isinstance(bounds, list) and len(bounds) == 2:
            out[f"eval/{name}_ci95_low"], out[f"eval/{name}_ci95_high"] = bounds
    return out


def round_step(label: str) -> int:
    return 0 if label == "baseline" else int(label) + 1


def log_metrics(
    run_dir: Path, report: dict[str, Any], only: Sequence[str] | None = None
) -> list[str]:
    """Send the run report's per-round scalars to the installed trackers; returns notes on
    what was skipped. TensorBoard is rewritten whole (idempotent); W&B gets `only` rounds."""
    notes = []
    if importlib.util.find_spec("tensorboard") is None:
        notes.append(
            "tensorboard is not installed (pip install 'iterkd[report]'): "
            "no TensorBoard metrics written"
        )
    else:
        notes += write_tensorboard(run_dir, report)
    if importlib.util.find_spec("wandb") is not None:
        notes += log_wandb(run_dir, report, only)
    return notes


def write_tensorboard(run_dir: Path, report: dict[str, Any]) -> list[str]:
    """All rounds into a fresh `tensorboard.tmp/`, then swapped for `tensorboard/`: a second
    call never duplicates points, and a kill leaves the previous event files whole."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        return [f"tensorboard: not written ({exc})"]
    final, tmp = run_dir / TENSORBOARD_DIR, run_dir / f"{TENSORBOARD_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(tmp))
    try:
        for entry in report["rounds"]:
            for tag, value in round_scalars(entry).items():
                writer.add_scalar(tag, value, global_step=round_step(entry["round"]))
        _training_curves(writer, report["rounds"])
    finally:
        writer.close()
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return []


def _training_curves(writer: Any, rounds: list[dict[str, Any]]) -> None:
    """Per-step loss and margin, the steps of round after round laid end to end."""
    offset = 0
    for entry in rounds:
        log = (entry.get("training") or {}).get("log") or []
        for row in log:
            for key in ("loss", "margin"):
                if _number(row.get(key)) and _number(row.get("step")):
                    writer.add_scalar(f"train_step/{key}", row[key], offset + int(row["step"]))
        offset += max((int(r["step"]) for r in log if _number(r.get("step"))), default=0)


def log_wandb(run_dir: Path, report: dict[str, Any], only: Sequence[str] | None) -> list[str]:
    """Offline unless WANDB_MODE says otherwise: a report never sends data by surprise."""
    import wandb

    run = report["run"]
    try:
        tracker = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "iterkd"),
            name=run["name"],
            id=f"{run['name']}-{run['config_hash']}",
            resume="allow",
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
        )
        for entry in report["rounds"]:
            if (only is None or entry["round"] in only) and entry["status"] != "pending":
                tracker.log(round_scalars(entry), step=round_step(entry["round"]))
        tracker.finish()
    except Exception as exc:  # a tracker's failure must never fail a round
        return [f"wandb: not logged ({type(exc).__name__}: {exc})"]
    return []


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

"""`iterkd status`: a run's steps as a rounds x stages table with durations, each round's
headline metrics, its pass@k on the `data.eval` set with 95 % intervals, the pass@1 trend (each
round against the one before and the baseline, with the paired test's p-value) and the
student's pass@1 on each round's own questions before and after its training."""

from __future__ import annotations

from typing import Any

from iterkd.metrics import adjust_rounds, describe_change, describe_value
from iterkd.rundir import BASELINE, STAGES, RunDir, RunState, StepState, round_label

PASS_TABLE = "evaluation pass@k (data.eval) [95 % interval over questions]"
_MARK = {"complete": "", "running": "…", "failed": "FAILED", "pending": "-"}


def format_status(run: RunDir) -> str:
    state = run.load_state()
    rounds = _round_labels(state)
    holder = run.locked_by()
    lines = [
        f"run {state.name} at {run.path} (iterkd {state.iterkd_version}, config {state.config_hash})",
        f"controller: {'running, pid ' + str(holder) if holder else 'not running'}",
        "",
        _row("round", list(STAGES)),
    ]
    for label in rounds:
        cells = [_cell(state.steps.get(f"{label}/{stage}")) for stage in STAGES]
        if label == BASELINE:
            cells = ["" if s != "evaluate" else c for s, c in zip(STAGES, cells, strict=True)]
        lines.append(_row(label, cells))
    lines += ["", _row("round", [h for h, _ in _HEADLINES])]
    for label in rounds:
        lines.append(_row(label, [_headline(state, label, f) for _, f in _HEADLINES]))
    lines += ["", PASS_TABLE, *pass_lines(state, rounds)]
    lines += ["", "pass@1 trend", *trend_lines(state, rounds)]
    lines += ["", "train-question pass@1 (before -> after the round's training)"]
    lines += train_pass_lines(state, rounds)
    failed = [s for s in state.steps.values() if s.status == "failed"]
    lines += [f"\n{s.round}/{s.stage} failed: {s.error}" for s in failed]
    return "\n".join(lines)


def _round_labels(state: RunState) -> list[str]:
    labels = sorted({s.round for s in state.steps.values() if s.round != BASELINE})
    return [BASELINE, *labels]


def _cell(step: StepState | None) -> str:
    if step is None:
        return "-"
    if step.status == "complete" and step.seconds is not None:
        return f"{step.seconds:.1f}s"
    return _MARK[step.status]


def _row(first: str, cells: list[str], width: int = 11) -> str:
    return f"{first:<9}" + "".join(f"{c:>{width}}" for c in cells)


def _metric(state: RunState, label: str, stage: str, *path: str) -> Any:
    step = state.steps.get(f"{label}/{stage}")
    value: Any = step.metrics if step and step.status == "complete" else None
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


_HEADLINES = [
    ("teacher", lambda s, r: _fmt(_metric(s, r, "verify", "teacher", "pass_rate"))),
    ("student", lambda s, r: _fmt(_metric(s, r, "verify", "student", "pass_rate"))),
    ("sft/pairs", lambda s, r: _pair(_metric(s, r, "train", "sft_rows"), _metric(s, r, "train", "pairs"))),
    ("loss", lambda s, r: _fmt(_metric(s, r, "train", "loss_last"))),
    ("e/m/h", lambda s, r: _buckets(_metric(s, r, "feedback", "buckets"))),
    ("new q", lambda s, r: _fmt(_metric(s, r, "synthesize", "funnel", "accepted"))),
]  # fmt: skip


def _headline(state: RunState, label: str, formatter) -> str:
    return formatter(state, label)


GREEDY = "greedy_pass@1"  # iterkd.stages.evaluate.GREEDY (importing a stage costs seconds)


def pass_lines(state: RunState, rounds: list[str]) -> list[str]:
    """A rounds x metrics table: every pass@k the evaluations measured (and greedy pass@1),
    each with its interval where the run recorded one."""
    measured = [_metric(state, label, "evaluate") or {} for label in rounds]
    keys = sorted(
        {k for m in measured for k in m if k.startswith("pass@")}, key=lambda k: int(k[5:])
    )
    keys += [GREEDY] if any(GREEDY in m for m in measured) else []
    lines = [_row("round", [k.replace("_", " ") for k in keys], width=22)]
    for label, metrics in zip(rounds, measured, strict=True):
        intervals = metrics.get("intervals") or {}
        cells = [_valued(metrics.get(k), intervals.get(k)) for k in keys]
        lines.append(_row(label, cells, width=22))
    return lines


def _valued(value: Any, ci95: Any) -> str:
    return describe_value(value, ci95) if isinstance(value, int | float) else "-"


def _pair(a: Any, b: Any) -> str:
    return "-" if a is None and b is None else f"{_fmt(a)}/{_fmt(b)}"


def _buckets(counts: Any) -> str:
    if not isinstance(counts, dict):
        return "-"
    return "/".join(str(counts.get(b, 0)) for b in ("easy", "medium", "hard"))


def trend_lines(state: RunState, rounds: list[str]) -> list[str]:
    """One line per round: its pass@1, and the change since the previous evaluated round and
    since the baseline (p-values adjusted by Holm over the rounds, as the report does); a round
    without a complete evaluation says so and is skipped over."""
    base = _pass1(state, BASELINE)
    tested = {which: _family(state, rounds, "evaluate", (which, "pass@1"))
              for which in ("vs_previous", "vs_baseline")}  # fmt: skip
    previous: tuple[str, float] | None = None
    lines = []
    for label in rounds:
        value = _pass1(state, label)
        if value is None:
            step = state.steps.get(f"{label}/evaluate")
            lines.append(f"{label:<9}{'-':>8}  (evaluate {step.status if step else 'pending'})")
            continue
        line = f"{label:<9}{value:>8.3f}" + _interval(state, label)
        if label != BASELINE:
            if previous is not None:
                applies = previous[0] == _before(label)
                versus = tested["vs_previous"].get(label) if applies else None
                line += _versus(f"previous ({previous[0]})", versus, _delta(value, previous[1]))
            line += _versus("baseline", tested["vs_baseline"].get(label), _delta(value, base))
        lines.append(line)
        previous = (label, value)
    return lines


def _family(state: RunState, rounds: list[str], stage: str, path: tuple[str, ...]) -> dict:
    """{round: described change} for one change (`path` into the stage's metrics) of every
    round that recorded it, its p-values adjusted together (Holm); empty for a run from
    before the paired tests were recorded."""
    found = {r: c for r in rounds if isinstance(c := _metric(state, r, stage, *path), dict)}
    return {r: describe_change(c) for r, c in adjust_rounds(found).items()}


def _versus(what: str, tested: str | None, delta: str) -> str:
    """'  vs baseline: +0.125 [...], p=0.3, not significant', or for a run from before the
    paired tests were recorded the bare '  +0.125 vs baseline'."""
    return f"  vs {what}: {tested}" if tested else f"  {delta} vs {what}"


def _interval(state: RunState, label: str) -> str:
    interval = _metric(state, label, "evaluate", "intervals", "pass@1")
    return f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""


def _before(label: str) -> str:
    """The round whose evaluation an evaluate step compares itself with as `vs_previous`."""
    return round_label(int(label) - 1 if int(label) > 0 else None)


def train_pass_lines(state: RunState, rounds: list[str]) -> list[str]:
    """Per round: the student's pass@1 on the round's questions before its training (the
    student stage) and after it (feedback), each with its interval, and the paired change."""
    changes = _family(state, rounds[1:], "feedback", ("train_pass", "vs_round_start"))
    lines = []
    for label in rounds[1:]:
        train = _metric(state, label, "feedback", "train_pass")
        if not isinstance(train, dict):
            lines.append(f"{label:<9}-")  # not measured yet, or a run from before it was
            continue
        before, after = train["before"], train["after"]
        lines.append(
            f"{label:<9}{describe_value(before['value'], before['ci95'])} -> "
            f"{describe_value(after['value'], after['ci95'])}"
            + (f"  change: {changes[label]}" if label in changes else "")
        )
    return lines


def _pass1(state: RunState, label: str) -> float | None:
    value = _metric(state, label, "evaluate", "pass@1")
    return float(value) if isinstance(value, int | float) else None


def _delta(value: float, reference: float | None) -> str:
    return "-" if reference is None else f"{value - reference:+.3f}"

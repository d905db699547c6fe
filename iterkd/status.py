"""`iterkd status`: a run's steps as a rounds x stages table with durations, each round's
headline metrics, and the pass@1 trend (each round against the one before and the baseline)."""

from __future__ import annotations

from typing import Any

from iterkd.rundir import BASELINE, STAGES, RunDir, RunState, StepState

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
    lines += ["", "pass@1 trend", *trend_lines(state, rounds)]
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


def _row(first: str, cells: list[str]) -> str:
    return f"{first:<9}" + "".join(f"{c:>11}" for c in cells)


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
    ("pass@1", lambda s, r: _fmt(_metric(s, r, "evaluate", "pass@1"))),
    ("best-k", lambda s, r: _best_k(s, r)),
    ("teacher", lambda s, r: _fmt(_metric(s, r, "verify", "teacher", "pass_rate"))),
    ("student", lambda s, r: _fmt(_metric(s, r, "verify", "student", "pass_rate"))),
    ("sft/pairs", lambda s, r: _pair(_metric(s, r, "train", "sft_rows"), _metric(s, r, "train", "pairs"))),
    ("loss", lambda s, r: _fmt(_metric(s, r, "train", "loss_last"))),
    ("e/m/h", lambda s, r: _buckets(_metric(s, r, "feedback", "buckets"))),
    ("new q", lambda s, r: _fmt(_metric(s, r, "synthesize", "funnel", "accepted"))),
]  # fmt: skip


def _headline(state: RunState, label: str, formatter) -> str:
    return formatter(state, label)


def _best_k(state: RunState, label: str) -> str:
    metrics = _metric(state, label, "evaluate") or {}
    ks = sorted((int(k[5:]), v) for k, v in metrics.items() if k.startswith("pass@"))
    return f"@{ks[-1][0]} {ks[-1][1]:.3f}" if ks else "-"


def _pair(a: Any, b: Any) -> str:
    return "-" if a is None and b is None else f"{_fmt(a)}/{_fmt(b)}"


def _buckets(counts: Any) -> str:
    if not isinstance(counts, dict):
        return "-"
    return "/".join(str(counts.get(b, 0)) for b in ("easy", "medium", "hard"))


def trend_lines(state: RunState, rounds: list[str]) -> list[str]:
    """One line per round: its pass@1, and the change since the previous evaluated round and
    since the baseline; a round without a complete evaluation says so and is skipped over."""
    base = _pass1(state, BASELINE)
    previous: tuple[str, float] | None = None
    lines = []
    for label in rounds:
        value = _pass1(state, label)
        if value is None:
            step = state.steps.get(f"{label}/evaluate")
            lines.append(f"{label:<9}{'-':>8}  (evaluate {step.status if step else 'pending'})")
            continue
        line = f"{label:<9}{value:>8.3f}"
        if label != BASELINE:
            if previous is not None:
                line += f"  {_delta(value, previous[1])} vs previous ({previous[0]})"
            line += f"  {_delta(value, base)} vs baseline"
        lines.append(line)
        previous = (label, value)
    return lines


def _pass1(state: RunState, label: str) -> float | None:
    value = _metric(state, label, "evaluate", "pass@1")
    return float(value) if isinstance(value, int | float) else None


def _delta(value: float, reference: float | None) -> str:
    return "-" if reference is None else f"{value - reference:+.3f}"

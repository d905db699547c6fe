"""`iterkd status` ends with the pass@1 trend: each round against the previous evaluated round
and against the baseline."""

from __future__ import annotations

from pathlib import Path

from iterkd.rundir import RunDir, RunState, StepState
from iterkd.status import format_status, trend_lines
from tests.report.helpers import summary


def _state(passes: dict[str, float | None]) -> RunState:
    steps = {}
    for label, value in passes.items():
        status = "failed" if value is None else "complete"
        metrics = {} if value is None else {"pass@1": value}
        steps[f"{label}/evaluate"] = StepState(
            round=label, stage="evaluate", seed=0, status=status, metrics=metrics
        )
    return RunState(name="t", created=0.0, config_hash="h", steps=steps)


def test_trend_lines_skip_a_failed_round() -> None:
    state = _state({"baseline": 0.25, "000": 0.5, "001": None, "002": 0.375})
    assert trend_lines(state, ["baseline", "000", "001", "002", "003"]) == [
        "baseline    0.250",
        "000         0.500  +0.250 vs previous (baseline)  +0.250 vs baseline",
        "001             -  (evaluate failed)",
        "002         0.375  -0.125 vs previous (000)  +0.125 vs baseline",
        "003             -  (evaluate pending)",
    ]


def test_trend_without_a_baseline() -> None:
    state = _state({"baseline": None, "000": 0.5})
    assert trend_lines(state, ["baseline", "000"])[1] == "000         0.500  - vs baseline"


def test_status_of_the_real_run_ends_with_the_trend(report_run: Path) -> None:
    text = format_status(RunDir(report_run))
    trend = text.split("pass@1 trend\n", 1)[1].splitlines()
    values = [
        summary(report_run, label, "evaluate")["pass@1"] for label in ("baseline", "000", "001")
    ]
    assert trend[0] == f"baseline {values[0]:>8.3f}"
    assert trend[1].startswith(
        f"000      {values[1]:>8.3f}  {values[1] - values[0]:+.3f} vs previous"
    )
    assert trend[2].endswith(f"{values[2] - values[0]:+.3f} vs baseline")

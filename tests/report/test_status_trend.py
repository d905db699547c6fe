"""`iterkd status` ends with the pass@1 trend: each round against the previous evaluated round
and against the baseline."""

from __future__ import annotations

from pathlib import Path

from iterkd.metrics import adjust_family, describe_change, describe_value
from iterkd.rundir import RunDir, RunState, StepState
from iterkd.status import PASS_TABLE, format_status, trend_lines
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


def test_status_of_the_real_run_shows_intervals_and_tests(report_run: Path) -> None:
    text = format_status(RunDir(report_run))
    evaluations = [summary(report_run, label, "evaluate") for label in ("baseline", "000", "001")]
    values = [e["pass@1"] for e in evaluations]
    intervals = [e["intervals"]["pass@1"] for e in evaluations]
    trend = text.split("pass@1 trend\n", 1)[1].splitlines()
    shown = [
        f"{v:>8.3f} [{low:.2f}, {high:.2f}]"
        for v, (low, high) in zip(values, intervals, strict=True)
    ]
    # each round's change is read with the other round's: Holm over the two rounds

    def adjusted(which: str, index: int) -> str:
        return describe_change(adjust_family([e[which]["pass@1"] for e in evaluations[1:]])[index])

    assert trend[0] == f"baseline {shown[0]}"
    assert trend[1].startswith(
        f"000      {shown[1]}  vs previous (baseline): {adjusted('vs_previous', 0)}"
    )
    assert trend[2].endswith(f"vs baseline: {adjusted('vs_baseline', 1)}")
    assert "Holm over 2 rounds" in trend[2]
    table = text.split(PASS_TABLE + "\n", 1)[1].splitlines()
    assert table[0].split() == ["round", "pass@1", "pass@2", "greedy", "pass@1"]
    greedy = describe_value(
        evaluations[2]["greedy_pass@1"], evaluations[2]["intervals"]["greedy_pass@1"]
    )
    assert table[3].startswith("001") and table[3].endswith(greedy)
    trains = [summary(report_run, label, "feedback")["train_pass"] for label in ("000", "001")]
    train, change = trains[1], adjust_family([t["vs_round_start"] for t in trains])[1]
    last = text.split("training)\n", 1)[1].splitlines()[1]
    assert last == (
        f"001      {describe_value(train['before']['value'], train['before']['ci95'])} -> "
        f"{describe_value(train['after']['value'], train['after']['ci95'])}  "
        f"change: {describe_change(change)}"
    )
    assert ("not significant" in last) is not change["significant"]


def test_a_lone_round_under_005_is_read_with_the_other_rounds() -> None:
    state = _state({"baseline": 0.25, "000": 0.3, "001": 0.3, "002": 0.4})
    for label, p_value in (("000", 0.3), ("001", 0.5), ("002", 0.04)):
        change = {"questions": 20, "delta": 0.1, "ci95": [0.0, 0.2], "p_value": p_value}
        change["significant"] = p_value < 0.05
        state.steps[f"{label}/evaluate"].metrics["vs_baseline"] = {"pass@1": change}
    last = trend_lines(state, ["baseline", "000", "001", "002"])[3]
    assert last.endswith("vs baseline: +0.100 [+0.000, +0.200], p=0.04, Holm over 3 rounds: "
                         "0.12, not significant")  # fmt: skip

"""The evaluate stage with the tiny student on a hand-built run directory: pass@k from sampled
answers and greedy pass@1, each with its interval, and the paired comparisons against earlier
evaluations read from their verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iterkd.config import load_config
from iterkd.metrics import PAIRED_TEST
from iterkd.records import SampleRecord, VerdictRecord, read_jsonl, write_json, write_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from iterkd.stages.common import StageContext
from iterkd.stages.evaluate import GREEDY, compared_with_best

QUESTIONS = 3
OVERRIDES = [
    f"data.eval.limit={QUESTIONS}",
    "evaluate={n: 2, temperature: 0.8, max_new_tokens: 24, ks: [1, 2], greedy: true}",
    "sandbox.workers=2",
]


def passes(folder: Path, name: str = "verdicts.jsonl") -> dict[str, int]:
    out: dict[str, int] = {}
    for verdict in read_jsonl(folder / name, VerdictRecord):
        out[verdict.question_id] = out.get(verdict.question_id, 0) + verdict.passed
    return out


@pytest.fixture(scope="module")
def evaluated(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The baseline evaluation, then round 0's with an untrained student (the same model)."""
    cfg = load_config(None, OVERRIDES)
    run = RunDir.create(tmp_path_factory.mktemp("eval") / "run", cfg)
    baseline = run_stage(run, cfg, None, "evaluate")
    train = run.stage_dir(0, "train")
    train.mkdir(parents=True)
    write_json(train / "summary.json", {"checkpoint": "none"})  # nothing trained
    return run, baseline, run_stage(run, cfg, 0, "evaluate")


def test_metrics_are_plain_floats_with_intervals(evaluated: Any) -> None:
    run, baseline, _ = evaluated
    folder = run.stage_dir(None, "evaluate")
    sampled, greedy = passes(folder), passes(folder, "greedy_verdicts.jsonl")
    assert len(read_jsonl(folder / "greedy_samples.jsonl", SampleRecord)) == QUESTIONS
    assert baseline["samples"] == 2 * QUESTIONS
    assert baseline["pass@1"] == pytest.approx(sum(sampled.values()) / (2 * QUESTIONS), abs=1e-6)
    assert baseline[GREEDY] == pytest.approx(sum(greedy.values()) / QUESTIONS, abs=1e-6)
    assert set(baseline["intervals"]) == {"pass@1", "pass@2", GREEDY}
    for key, (low, high) in baseline["intervals"].items():
        assert isinstance(baseline[key], float) and 0.0 <= low <= baseline[key] <= high <= 1.0
    assert "vs_previous" not in baseline and "improved" not in baseline
    assert "greedy_generation" in baseline


def test_round_compares_with_previous_and_baseline_on_the_same_questions(evaluated: Any) -> None:
    _, baseline, first = evaluated
    assert first["vs_previous"] == first["vs_baseline"]  # round 0's previous is the baseline
    assert set(first["vs_baseline"]) == {"pass@1", "pass@2", GREEDY}
    for key, comparison in first["vs_baseline"].items():
        assert comparison["questions"] == QUESTIONS and comparison["test"] == PAIRED_TEST
        assert (comparison["before"], comparison["after"]) == (baseline[key], first[key])
        assert comparison["significant"] is False  # 3 questions never reach p < 0.05
    # the same untrained student, decoding greedily: the same answers, no change at all
    greedy = first["vs_baseline"][GREEDY]
    assert (greedy["delta"], greedy["p_value"]) == (0.0, 1.0)
    assert first["best_before"] == baseline["pass@1"] and first["improved"] is False


def test_an_earlier_run_without_greedy_answers_is_compared_on_what_it_has(
    evaluated: Any, tmp_path: Path
) -> None:
    run, _, _ = evaluated
    (run.stage_dir(None, "evaluate") / "greedy_verdicts.jsonl").rename(tmp_path / "kept")
    try:
        summary = run_stage(run, run.load_config(), 0, "evaluate")
    finally:
        (tmp_path / "kept").rename(run.stage_dir(None, "evaluate") / "greedy_verdicts.jsonl")
    assert set(summary["vs_baseline"]) == {"pass@1", "pass@2"}
    assert GREEDY in summary["intervals"]


def _context(tmp_path: Path, baseline_passed: list[bool]) -> StageContext:
    """A run whose baseline evaluation answered each question once, as `baseline_passed` says."""
    cfg = load_config(None, [])
    run = RunDir.create(tmp_path / "run", cfg)
    folder = run.stage_dir(None, "evaluate")
    folder.mkdir(parents=True)
    verdicts = [
        VerdictRecord(
            sample_id=f"q{i}/student/0", question_id=f"q{i}", role="student", index=0,
            status="passed" if ok else "failed", passed=ok, tests_passed=int(ok), tests_total=1,
        )
        for i, ok in enumerate(baseline_passed)
    ]  # fmt: skip
    write_jsonl(folder / "verdicts.jsonl", verdicts)
    write_json(folder / "summary.json", {"pass@1": sum(baseline_passed) / len(baseline_passed)})
    return StageContext(run=run, cfg=cfg, round=0, stage="evaluate", out=tmp_path / "out")


def test_improved_means_a_significant_improvement(tmp_path: Path) -> None:
    ctx = _context(tmp_path, [False] * 8)
    swept = {f"q{i}": (1, 1) for i in range(8)}  # every question now passes: p = 2/256
    assert compared_with_best(ctx, swept, 1.0) == {"best_before": 0.0, "improved": True}
    one = {f"q{i}": (1, int(i == 0)) for i in range(8)}  # higher, but one question is noise
    assert compared_with_best(ctx, one, 0.125) == {"best_before": 0.0, "improved": False}

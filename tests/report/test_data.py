"""The report's numbers are the run's: every value checked against state.json, the summaries
and the JSONL files the stages wrote; and a run with missing, failed or interrupted steps still
reports what exists and names what does not."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from iterkd.metrics import adjust_family, describe_change, describe_value
from iterkd.report import SCHEMA_VERSION, ReportError, RunSource, round_report, run_report
from iterkd.report.data import FUNNEL, RUN_LEVEL_DROPS
from iterkd.report.drilldown import clip
from iterkd.report.html import render_round_html, render_run_html
from iterkd.report.markdown import render_round_md, render_run_md
from iterkd.rundir import STAGES
from tests.report.helpers import edit_state, jsonl, state, summary


def _report(run: Path, label: str | int) -> dict:
    return round_report(RunSource.open(run), label)


def test_round_report_headline_values_equal_the_run(report_run: Path) -> None:
    report = _report(report_run, 0)
    assert (report["schema_version"], report["kind"], report["round"]) == (1, "round", "000")
    assert SCHEMA_VERSION == 1
    assert report["status"] == "complete" and report["missing"] == []
    steps = state(report_run)["steps"]
    assert report["time"] == {s: steps[f"000/{s}"]["seconds"] for s in STAGES}
    evaluate = summary(report_run, "000", "evaluate")
    baseline = summary(report_run, "baseline", "evaluate")
    ks = [k[5:] for k in evaluate if k.startswith("pass@")]
    assert report["evaluation"]["pass_at"] == {k: evaluate[f"pass@{k}"] for k in ks}
    expected = {k: round(evaluate[f"pass@{k}"] - baseline[f"pass@{k}"], 6) for k in ks}
    assert report["evaluation"]["vs_baseline"] == expected
    assert report["evaluation"]["vs_previous"] == expected  # round 0's previous is the baseline
    verify = summary(report_run, "000", "verify")
    assert report["verify"]["teacher"] == verify["teacher"]
    assert report["verify"]["student"] == verify["student"]


def test_every_pass_rate_carries_its_interval_and_every_change_its_test(
    report_run: Path,
) -> None:
    report = _report(report_run, 1)
    evaluate = summary(report_run, "001", "evaluate")
    evaluation = report["evaluation"]
    assert evaluation["greedy"] == evaluate["greedy_pass@1"]
    assert evaluation["intervals"] == {
        "1": evaluate["intervals"]["pass@1"],
        "2": evaluate["intervals"]["pass@2"],
        "greedy": evaluate["intervals"]["greedy_pass@1"],
    }
    # each change is read with the same change of round 000: Holm over the two rounds
    rounds = [summary(report_run, label, "evaluate") for label in ("000", "001")]

    def adjusted(which: str, metric: str) -> dict:
        return adjust_family([e[which][metric] for e in rounds])[1]

    for which in ("vs_previous", "vs_baseline"):
        assert evaluation["changes"][which]["1"] == adjusted(which, "pass@1")
        assert evaluation["changes"][which]["greedy"] == adjusted(which, "greedy_pass@1")
        assert evaluation["changes"][which]["1"]["family"] == 2
    trains = [summary(report_run, label, "feedback")["train_pass"] for label in ("000", "001")]
    train = trains[1]
    train_change = adjust_family([t["vs_round_start"] for t in trains])[1]
    assert report["feedback"]["train_pass"]["vs_round_start"] == train_change
    assert report["feedback"]["train_pass"]["before"] == train["before"]
    shown = [
        describe_value(evaluate["pass@1"], evaluate["intervals"]["pass@1"]),
        describe_value(evaluate["greedy_pass@1"], evaluate["intervals"]["greedy_pass@1"]),
        describe_change(adjusted("vs_previous", "pass@1")),
        describe_change(adjusted("vs_baseline", "greedy_pass@1")),
        describe_value(train["before"]["value"], train["before"]["ci95"]),
        describe_value(train["after"]["value"], train["after"]["ci95"]),
        describe_change(train_change),
        "not significant",  # 4 held-out questions: no change can reach p < 0.05
    ]
    whole = run_report(RunSource.open(report_run))
    for text in (render_round_md(report), render_round_html(report)):
        assert all(line in text for line in shown)
    for text in (render_run_md(whole), render_run_html(whole)):
        assert all(line in text for line in shown[:3] + shown[4:])


def _strip_statistics(run: Path) -> None:
    """The run as an iterkd from before intervals and paired tests wrote it."""
    keys = ("intervals", "vs_previous", "vs_baseline", "greedy_pass@1", "train_pass")
    keys += ("greedy_generation",)  # such a run did not answer greedily either
    data = state(run)
    for key, step in data["steps"].items():
        path = run / "rounds" / key / "summary.json"
        if key.endswith(("/evaluate", "/feedback")):
            kept = {k: v for k, v in json.loads(path.read_text()).items() if k not in keys}
            path.write_text(json.dumps(kept))
            step["metrics"] = kept
    (run / "state.json").write_text(json.dumps(data))


def test_a_run_from_before_the_statistics_still_renders(run_copy: Path) -> None:
    _strip_statistics(run_copy)
    source = RunSource.open(run_copy)
    report = round_report(source, 1)
    evaluate = summary(run_copy, "001", "evaluate")
    evaluation = report["evaluation"]
    assert evaluation["intervals"] == {} and evaluation["greedy"] is None
    assert report["feedback"]["train_pass"] is None
    delta = round(evaluate["pass@1"] - summary(run_copy, "000", "evaluate")["pass@1"], 6)
    text = _renders(report) + _renders(run_report(source))
    assert f"| {evaluate['pass@1']:.3f} | {delta:+.3f} |" in text  # bare value and delta
    assert "not significant" not in text and "greedy" not in text


def test_tokens_per_stage_equal_samples_and_generation_reports(report_run: Path) -> None:
    report = _report(report_run, 1)
    for stage in ("teacher", "student", "feedback", "evaluate"):
        samples = jsonl(report_run / "rounds" / "001" / stage / "samples.jsonl")
        if stage == "evaluate":  # the greedy answers too (evaluate.greedy)
            samples += jsonl(report_run / "rounds" / "001" / stage / "greedy_samples.jsonl")
        assert report["tokens"][stage]["prompt"] == sum(s["prompt_tokens"] for s in samples)
    evaluate = summary(report_run, "001", "evaluate")
    generated = evaluate["generation"]["completion_tokens"]
    generated += evaluate["greedy_generation"]["completion_tokens"]
    assert report["tokens"]["evaluate"]["completion"] == generated
    feedback = summary(report_run, "001", "feedback")
    generated = feedback["generation"]["completion_tokens"]
    generated += feedback["judge_generation"]["completion_tokens"]
    assert report["tokens"]["feedback"]["completion"] == generated
    train = summary(report_run, "001", "train")
    assert report["tokens"]["train"] == {
        "prompt": None,
        "completion": None,
        "trained": train["completion_tokens"],
    }
    assert report["tokens"]["verify"] == {"prompt": None, "completion": None, "trained": None}


def test_extraction_outcomes_per_stage_equal_the_samples(report_run: Path) -> None:
    """Each sampling stage's answers by code-extraction outcome, as samples.jsonl records them;
    a table per round and one for the run."""
    report = _report(report_run, 1)
    folder = report_run / "rounds" / "001"
    expected = {
        stage: dict(Counter(s["extraction"] for s in jsonl(folder / stage / "samples.jsonl")))
        for stage in ("teacher", "student", "feedback", "evaluate")
    }
    greedy = jsonl(folder / "evaluate" / "greedy_samples.jsonl")
    expected["evaluate/greedy"] = dict(Counter(s["extraction"] for s in greedy))
    assert report["extraction"] == expected
    whole = run_report(RunSource.open(report_run))
    assert [r["extraction"] for r in whole["rounds"]][2] == expected
    assert set(whole["rounds"][0]["extraction"]) == {"evaluate", "evaluate/greedy"}  # baseline
    for text in (render_round_md(report), render_round_html(report)):
        assert "Answers without usable code" in text and "no_entry_point: code without" in text
    for text in (render_run_md(whole), render_run_html(whole)):
        answers = sum(expected["teacher"].values())
        failed = answers - expected["teacher"].get("ok", 0)
        assert "Answers without usable code" in text and f"{failed} / {answers}" in text


def test_feedback_views_and_judge_counts(report_run: Path) -> None:
    report = _report(report_run, 0)
    records = jsonl(report_run / "rounds" / "000" / "feedback" / "feedback.jsonl")
    fb = summary(report_run, "000", "feedback")
    for name, view in report["feedback"]["views"].items():
        values = [r["views"][name] for r in records if r["views"][name] is not None]
        assert view["present"] == len(values) == sum(view["histogram"])
        assert view["missing"] == len(records) - len(values)
        assert view["mean"] == fb["views"][name]
        assert len(view["histogram"]) == 10
    assert report["feedback"]["judge"] == fb["judge"]
    assert report["feedback"]["buckets"] == fb["buckets"]


def test_bucket_transitions_follow_bucket_history(report_run: Path) -> None:
    first, second = _report(report_run, 0), _report(report_run, 1)
    records = jsonl(report_run / "rounds" / "001" / "feedback" / "feedback.jsonl")
    expected = Counter(
        (r["bucket_history"][-2] if len(r["bucket_history"]) > 1 else "new", r["bucket"])
        for r in records
    )
    rows = second["transitions"]["rows"]
    got = Counter(
        {(a, b): n for a, row in rows.items() for b, n in row.items() if n and b != "left"}
    )
    assert got == expected
    assert second["transitions"]["previous"] == "000"
    total = sum(first["transitions"]["rows"]["new"].values())
    assert total == len(jsonl(report_run / "rounds" / "000" / "feedback" / "feedback.jsonl"))


def test_synthesis_funnel_findings_and_training(report_run: Path) -> None:
    report = _report(report_run, 0)
    synth = summary(report_run, "000", "synthesize")
    assert dict(report["synthesis"]["funnel"]) == synth["funnel"]
    assert [step for step, _ in report["synthesis"]["funnel"]] == list(FUNNEL)
    reasons = {r["reason"]: r["count"] for r in report["synthesis"]["rejections"]}
    assert reasons == synth["rejections_by_reason"]
    verdicts = jsonl(report_run / "rounds" / "000" / "verify" / "verdicts.jsonl")
    for role in ("teacher", "student"):
        counts = Counter(c for v in verdicts if v["role"] == role for c in v["finding_codes"])
        assert dict(report["findings"][role]) == dict(counts.most_common(10))
    log = jsonl(report_run / "rounds" / "000" / "train" / "train_log.jsonl")
    assert [row["loss"] for row in report["training"]["log"]] == [row["loss"] for row in log]
    assert [row["margin"] for row in report["training"]["log"]] == [row["margin"] for row in log]
    assert (
        report["training"]["summary"]["loss_last"]
        == summary(report_run, "000", "train")["loss_last"]
    )


def test_funnel_order_is_the_synthesis_funnel() -> None:
    from iterkd.synthesis import FUNNEL as SYNTHESIS_FUNNEL

    assert tuple(SYNTHESIS_FUNNEL) == FUNNEL


def test_question_drill_down(report_run: Path) -> None:
    report = _report(report_run, 0)
    folder = report_run / "rounds" / "000"
    pool = jsonl(folder / "teacher" / "questions.jsonl")
    assert [q["id"] for q in report["questions"]] == [q["id"] for q in pool]
    samples = {s["id"]: s for s in jsonl(folder / "feedback" / "samples.jsonl")}
    verdicts = {v["sample_id"]: v for v in jsonl(folder / "feedback" / "verdicts.jsonl")}
    judged = {j["sample_id"]: j for j in jsonl(folder / "feedback" / "judge.jsonl")}
    for question, source in zip(report["questions"], pool, strict=True):
        sample = question["sample"]
        assert question["prompt"] == source["prompt"]
        assert sample["id"] == f"{question['id']}/student/0"
        assert sample["status"] == verdicts[sample["id"]]["status"]
        assert sample["findings"] == verdicts[sample["id"]]["finding_codes"]
        answer = samples[sample["id"]]
        assert sample["code"] == clip(answer["code"] or answer["text"])
        assert question["judge"]["raw"] == clip(judged[sample["id"]]["raw"], 2000)


def test_run_report_holds_every_round(report_run: Path) -> None:
    source = RunSource.open(report_run)
    report = run_report(source)
    assert (report["schema_version"], report["kind"], report["status"]) == (1, "run", "complete")
    assert [r["round"] for r in report["rounds"]] == ["baseline", "000", "001"]
    for entry in report["rounds"]:
        full = round_report(source, entry["round"])
        assert entry == {k: v for k, v in full.items() if k not in RUN_LEVEL_DROPS}
    assert report["missing"] == []
    assert set(report["rounds"][0]["stages"]) == {"evaluate"}


def test_unknown_round_and_not_a_run(report_run: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ReportError, match=r"round 007 does not exist \(rounds: baseline, 000, 001\)"
    ):
        _report(report_run, 7)
    with pytest.raises(ReportError, match="expected a round number or 'baseline'"):
        _report(report_run, "last")
    with pytest.raises(ReportError, match="not an iterkd run directory"):
        RunSource.open(tmp_path)


# ------------------------------------------------------------------ broken runs
def _renders(report: dict) -> str:
    kind = report["kind"]
    md = render_round_md(report) if kind == "round" else render_run_md(report)
    html = render_round_html(report) if kind == "round" else render_run_html(report)
    return md + html


def test_failed_step_shows_what_exists(run_copy: Path) -> None:
    """Round 000 failed in train: later steps never ran, round 001 never started."""
    rounds = run_copy / "rounds"
    for stage in ("train", "feedback", "synthesize", "evaluate"):
        shutil.rmtree(rounds / "000" / stage)
        if stage != "train":
            edit_state(run_copy, f"000/{stage}", drop=True)
    edit_state(run_copy, "000/train", status="failed", error="CUDA out of memory", metrics={})
    shutil.rmtree(rounds / "001")
    for stage in STAGES:
        edit_state(run_copy, f"001/{stage}", drop=True)
    source = RunSource.open(run_copy)
    report = round_report(source, 0)
    assert report["status"] == "failed"
    assert report["verify"]["teacher"] == summary(run_copy, "000", "verify")["teacher"]
    assert report["training"] is None and report["feedback"] is None
    assert report["evaluation"] is None and report["questions"] is not None
    assert "train failed: CUDA out of memory" in report["missing"]
    assert "evaluate pending" in report["missing"]
    whole = run_report(source)
    assert [r["status"] for r in whole["rounds"]] == ["complete", "failed", "pending"]
    assert "001: not started" in whole["missing"]
    text = _renders(report) + _renders(whole)
    assert "train failed: CUDA out of memory" in text


def test_deleted_folder_and_file_are_marked_missing(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "rounds" / "001" / "evaluate")
    (run_copy / "rounds" / "000" / "feedback" / "judge.jsonl").unlink()
    source = RunSource.open(run_copy)
    late = round_report(source, 1)
    assert late["stages"]["evaluate"]["status"] == "missing" and late["status"] == "missing"
    assert "evaluate missing" in late["missing"]
    metrics = state(run_copy)["steps"]["001/evaluate"]["metrics"]
    assert late["evaluation"]["pass_at"]["1"] == metrics["pass@1"]  # the state kept it
    early = round_report(source, 0)
    assert "000/feedback/judge.jsonl: missing" in early["missing"]
    assert all(q["judge"] is None for q in early["questions"])
    for report in (late, early, run_report(source)):
        assert "missing" in _renders(report)


def test_run_killed_mid_round(run_copy: Path) -> None:
    """Killed inside 001/feedback: its folder is still `.tmp`, the state says running."""
    rounds = run_copy / "rounds" / "001"
    (rounds / "feedback").rename(rounds / "feedback.tmp")
    for stage in ("synthesize", "evaluate"):
        shutil.rmtree(rounds / stage)
        edit_state(run_copy, f"001/{stage}", drop=True)
    edit_state(run_copy, "001/feedback", status="running", seconds=None, metrics={})
    source = RunSource.open(run_copy)
    report = round_report(source, 1)
    assert report["status"] == "interrupted"
    assert report["stages"]["feedback"]["status"] == "interrupted"
    assert report["stages"]["synthesize"]["status"] == "pending"
    assert report["feedback"] is None and report["transitions"] is None
    assert report["training"]["log"]  # train finished before the kill
    assert report["questions"][0]["sample_stage"] == "student"  # no feedback answer yet
    whole = run_report(source)
    assert whole["status"] == "interrupted"
    assert whole["rounds"][-1]["evaluation"] is None
    assert "interrupted" in _renders(whole)


def test_torn_jsonl_line_is_skipped_and_noted(run_copy: Path) -> None:
    path = run_copy / "rounds" / "000" / "feedback" / "feedback.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, '{"question_id": "torn']) + "\n")
    report = _report(run_copy, 0)
    assert (
        f"000/feedback/feedback.jsonl line {len(lines) + 1}: not a JSON object" in report["missing"]
    )
    assert report["feedback"]["views"]["tests"]["present"] == len(lines)

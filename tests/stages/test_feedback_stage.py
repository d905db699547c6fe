"""The feedback stage end to end with the tiny student and judge, on a hand-built run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iterkd.config import RunConfig, load_config
from iterkd.judge import JudgeRecord
from iterkd.questions import Question, load_bundled
from iterkd.records import (
    FeedbackRecord,
    SampleRecord,
    VerdictRecord,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)
from iterkd.rundir import RunDir
from iterkd.stages import run_stage

QUESTIONS = load_bundled("seed")[:3]
OVERRIDES = [
    "student.n=2",
    "student.max_new_tokens=24",
    "feedback.judge_max_new_tokens=16",
    "sandbox.workers=2",
]
FILES = ("samples.jsonl", "verdicts.jsonl", "judge.jsonl", "feedback.jsonl", "summary.json")


def write_stage(run: RunDir, round_index: int, stage: str, summary: dict, **files: list) -> None:
    """A complete earlier stage folder, as if that stage had run."""
    folder = run.stage_dir(round_index, stage)
    folder.mkdir(parents=True)
    for name, records in files.items():
        write_jsonl(folder / f"{name}.jsonl", records)
    write_json(folder / "summary.json", summary)


def new_run(
    path: Path, overrides: list[str], questions: list[Question]
) -> tuple[RunDir, RunConfig]:
    cfg = load_config(None, overrides)
    run = RunDir.create(path, cfg)
    write_stage(run, 0, "teacher", {"questions": len(questions)}, questions=questions, samples=[])
    write_stage(run, 0, "train", {"checkpoint": "none"})  # the student stays the initial one
    write_stage(run, 0, "verify", {}, verdicts=student_verdicts(questions, passed=1))
    return run, cfg


def student_verdicts(questions: list[Question], passed: int) -> list[VerdictRecord]:
    """The student stage's verdicts as verify writes them: 2 answers per question, the first
    question's `passed` of them passing, a teacher verdict beside them (not counted)."""
    out = []
    for number, question in enumerate(questions):
        for index in range(2):
            ok = number == 0 and index < passed
            out.append(VerdictRecord(
                sample_id=f"{question.id}/student/{index}", question_id=question.id,
                role="student", index=index, status="passed" if ok else "failed", passed=ok,
                tests_passed=int(ok), tests_total=1,
            ))  # fmt: skip
    teacher = VerdictRecord(
        sample_id="t", question_id="t", role="teacher", index=0, status="passed", passed=True,
        tests_passed=1, tests_total=1,
    )  # fmt: skip
    return [teacher, *out]


def stage_files(run: RunDir, round_index: int) -> dict[str, bytes]:
    folder = run.stage_dir(round_index, "feedback")
    return {name: (folder / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def two_runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The same round run in two fresh run directories, with the judge on."""
    out = []
    for name in ("a", "b"):
        run, cfg = new_run(tmp_path_factory.mktemp(name) / "run", OVERRIDES, QUESTIONS)
        out.append((run, run_stage(run, cfg, 0, "feedback")))
    return out


def test_outputs_hold_one_record_per_sample_and_question(two_runs: list[Any]) -> None:
    run, summary = two_runs[0]
    folder = run.stage_dir(0, "feedback")
    samples = read_jsonl(folder / "samples.jsonl", SampleRecord)
    verdicts = read_jsonl(folder / "verdicts.jsonl", VerdictRecord)
    judged = read_jsonl(folder / "judge.jsonl", JudgeRecord)
    records = read_jsonl(folder / "feedback.jsonl", FeedbackRecord)
    assert len(samples) == len(verdicts) == len(judged) == 6  # 3 questions x n=2
    assert [j.sample_id for j in judged] == [s.id for s in samples]
    assert [r.question_id for r in records] == sorted(q.id for q in QUESTIONS)
    for record in records:
        assert record.attempts == 2 and record.bucket_history == [record.bucket]
        assert set(record.views) == {"tests", "ruff", "pylint", "lint", "judge"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in record.views.values())
        assert sum(record.failure_kinds.values()) == record.attempts - record.passed
    assert summary["questions"] == 3 and summary["samples"] == 6
    assert sum(summary["buckets"].values()) == 3
    assert set(summary["views"]) == {"tests", "ruff", "pylint", "lint", "judge"}


def test_train_pass_before_and_after_with_paired_tests(two_runs: list[Any]) -> None:
    """Before: the student stage's verdicts (1 of 2 answers to the first question pass: pass@1
    1/6); after: the new student's answers, counted from verdicts.jsonl."""
    run, summary = two_runs[0]
    verdicts = read_jsonl(run.stage_dir(0, "feedback") / "verdicts.jsonl", VerdictRecord)
    per_question = [sum(v.passed for v in verdicts if v.question_id == q.id) / 2 for q in QUESTIONS]
    train = summary["train_pass"]
    assert train["questions"] == 3
    assert train["before"]["value"] == pytest.approx(1 / 6, abs=1e-6)
    assert train["after"]["value"] == pytest.approx(sum(per_question) / 3, abs=1e-6)
    for side in ("before", "after"):
        low, high = train[side]["ci95"]
        assert low <= train[side]["value"] <= high
    change = train["vs_round_start"]
    assert change["questions"] == 3 and change["before"] == train["before"]["value"]
    assert change["delta"] == pytest.approx(train["after"]["value"] - 1 / 6, abs=1e-6)
    assert change["significant"] is False  # 3 questions can never reach p < 0.05
    assert train["vs_baseline"] == change  # round 0 starts from the initial student


def test_judge_replies_are_parsed_or_kept_raw_as_missing(two_runs: list[Any]) -> None:
    """The tiny judge is random: whatever it says is recorded as it is, never turned into a
    score it did not give; the summary counts match the file."""
    run, summary = two_runs[0]
    folder = run.stage_dir(0, "feedback")
    judged = read_jsonl(folder / "judge.jsonl", JudgeRecord)
    missing = [j for j in judged if j.judged and j.scores is None]
    assert all(j.error for j in missing)
    assert summary["judge"]["asked"] == sum(j.judged for j in judged)
    assert summary["judge"]["missing"] == len(missing)
    assert summary["judge"]["parsed"] == sum(j.scores is not None for j in judged)
    records = read_jsonl(folder / "feedback.jsonl", FeedbackRecord)
    assert sum(len(r.judge_raw) for r in records) == len(missing)
    if summary["judge"]["parsed"] == 0:
        assert summary["views"]["judge"] is None and "note" in summary


def test_two_runs_are_byte_identical(two_runs: list[Any]) -> None:
    (run_a, _), (run_b, _) = two_runs
    assert stage_files(run_a, 0) == stage_files(run_b, 0)
    summary = read_json(run_a.stage_dir(0, "feedback") / "summary.json")
    assert "seconds" not in str(summary)


def test_a_rerun_from_the_cache_writes_the_same_records(two_runs: list[Any]) -> None:
    run, _ = two_runs[1]
    before = stage_files(run, 0)
    run_stage(run, run.load_config(), 0, "feedback")
    assert stage_files(run, 0) == before  # summary.json included: cache hits are not in it
    reports = [e for e in run.events() if e["event"] == "generation" and e["name"] == "feedback"]
    assert reports[-1]["from_cache"] == 3 and reports[-1]["generated"] == 0


def test_round_one_without_a_judge_extends_the_bucket_history(
    tiny_models: Path, tmp_path: Path
) -> None:
    run, cfg = new_run(tmp_path / "run", [*OVERRIDES, "models.judge=null"], QUESTIONS)
    earlier = [
        FeedbackRecord(
            question_id=QUESTIONS[0].id, attempts=2, passed=2, views={"tests": 1.0}, fused=1.0,
            bucket="easy", bucket_history=["medium", "easy"],
        )
    ]  # fmt: skip
    write_stage(run, 0, "feedback", {"questions": 1}, feedback=earlier)
    write_stage(run, 1, "teacher", {"questions": 3}, questions=QUESTIONS, samples=[])
    write_stage(run, 1, "train", {"checkpoint": "none"})
    write_stage(run, 1, "verify", {}, verdicts=student_verdicts(QUESTIONS, passed=2))
    summary = run_stage(run, cfg, 1, "feedback")
    assert summary["judge"] == "absent" and "no judge" in summary["note"]
    train = summary["train_pass"]  # round start: 2 of 2; round 0's student: 1 of 2
    before = (train["before"]["value"], train["vs_baseline"]["before"])
    assert before == pytest.approx((1 / 3, 1 / 6), abs=1e-6)
    assert summary["views"]["judge"] is None
    folder = run.stage_dir(1, "feedback")
    assert (folder / "judge.jsonl").read_text() == ""
    records = {r.question_id: r for r in read_jsonl(folder / "feedback.jsonl", FeedbackRecord)}
    first = records[QUESTIONS[0].id]
    assert first.bucket_history == ["medium", "easy", first.bucket]
    assert records[QUESTIONS[1].id].bucket_history == [records[QUESTIONS[1].id].bucket]
    assert all(r.views["judge"] is None and r.judge_raw == [] for r in records.values())


def test_an_empty_pool_gives_empty_files(tmp_path: Path) -> None:
    run, cfg = new_run(tmp_path / "run", OVERRIDES, [])
    summary = run_stage(run, cfg, 0, "feedback")
    assert summary["questions"] == 0 and "note" in summary
    folder = run.stage_dir(0, "feedback")
    assert all((folder / name).read_text() == "" for name in FILES if name.endswith(".jsonl"))

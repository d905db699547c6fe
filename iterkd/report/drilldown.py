"""The per-question drill-down of a round's report: each pool question with its prompt, one of
the student's answers (after this round's training when the feedback stage ran, else before it),
that answer's verdict and findings, and what the judge said about it, raw."""

from __future__ import annotations

from typing import Any

from iterkd.report.sources import RunSource, StageInfo

TEXT_LIMIT = 4000  # characters of a prompt, answer or judge reply kept per question


def questions(
    source: RunSource, label: str, stages: dict[str, StageInfo]
) -> list[dict[str, Any]] | None:
    pool = _pool(source, label, stages)
    if pool is None:
        return None
    after = stages["feedback"].complete
    where = ("feedback", "feedback") if after else ("student", "verify")
    samples = _first_by_question(_rows(source, label, where[0], "samples.jsonl", stages))
    verdicts = _by(_rows(source, label, where[1], "verdicts.jsonl", stages), "sample_id")
    judged = _by(_rows(source, label, "feedback", "judge.jsonl", stages), "sample_id")
    records = _by(_rows(source, label, "feedback", "feedback.jsonl", stages), "question_id")
    teacher = _teacher_counts(_rows(source, label, "verify", "verdicts.jsonl", stages))
    out = []
    for qid, prompt in pool:
        sample = samples.get(qid)
        entry = {"id": qid, "prompt": clip(prompt), **_feedback_fields(records.get(qid))}
        entry["teacher_passed"] = teacher.get(qid)
        entry["sample_stage"] = where[0]
        entry["sample"] = _sample(sample, verdicts) if sample else None
        entry["judge"] = _judge(judged.get(sample["id"])) if sample else None
        out.append(entry)
    return out


def clip(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more chars)"


def _pool(
    source: RunSource, label: str, stages: dict[str, StageInfo]
) -> list[tuple[str, str]] | None:
    """(id, prompt) of the round's questions, as the teacher stage froze the pool."""
    rows = _rows(source, label, "teacher", "questions.jsonl", stages)
    if rows is None:
        return None
    return [(str(q.get("id")), str(q.get("prompt", ""))) for q in rows]


def _rows(
    source: RunSource, label: str, stage: str, name: str, stages: dict[str, StageInfo]
) -> list[dict[str, Any]] | None:
    return source.jsonl(label, stage, name) if stages[stage].complete else None


def _first_by_question(samples: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each question's answer with the lowest index: the same one on every report of a run."""
    out: dict[str, dict[str, Any]] = {}
    for sample in sorted(samples or [], key=lambda s: s.get("index", 0)):
        if sample.get("role", "student") == "student":
            out.setdefault(str(sample.get("question_id")), sample)
    return out


def _by(rows: list[dict[str, Any]] | None, key: str) -> dict[str, dict[str, Any]]:
    return {str(row.get(key)): row for row in rows or []}


def _teacher_counts(verdicts: list[dict[str, Any]] | None) -> dict[str, list[int]]:
    """Question id -> [teacher answers passed, teacher answers] from verify."""
    out: dict[str, list[int]] = {}
    for verdict in verdicts or []:
        if verdict.get("role") == "teacher":
            counts = out.setdefault(str(verdict.get("question_id")), [0, 0])
            counts[0] += bool(verdict.get("passed"))
            counts[1] += 1
    return out


def _feedback_fields(record: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("bucket", "bucket_history", "fused", "views", "attempts", "passed", "failure_kinds")
    return {key: (record or {}).get(key) for key in keys}


def _sample(sample: dict[str, Any], verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    verdict = verdicts.get(str(sample.get("id"))) or {}
    return {
        "id": sample.get("id"),
        "code": clip(sample.get("code") or sample.get("text")),
        "finish_reason": sample.get("finish_reason"),
        "status": verdict.get("status"),
        "passed": verdict.get("passed"),
        "tests": [verdict.get("tests_passed"), verdict.get("tests_total")] if verdict else None,
        "message": verdict.get("message"),
        "findings": verdict.get("finding_codes") or [],
    }


def _judge(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    scores = record.get("scores") or {}
    return {
        "raw": clip(record.get("raw"), 2000),
        "error": record.get("error"),
        "overall": scores.get("overall"),
        "judged": record.get("judged", True),
    }

"""A round's report, and the run's, as plain schema-versioned dicts: what `report.json` holds
and what the Markdown and HTML renderers read. Every number comes from the run directory as the
stages wrote it (summaries, JSONL files, `state.json`). A section is None when its stage has not
completed (sections read from a summary use the state's copy when only the folder is gone), and
the round's `missing` list says what is absent and why. A round's report never raises for that.

Schema (version 1), round report:
    schema_version, kind="round", run{name, path, config_hash, iterkd_version, rounds_planned,
        controller_pid}, round, status, missing[str],
    stages{stage: {status, seconds, attempts, error, note}},
    time{stage: seconds}, tokens{stage: {prompt, completion, trained}},
    evaluation{pass_at{k: v}, questions, samples, previous, vs_previous{k: d}, vs_baseline{k: d}}
    and, except for the baseline:
    verify{teacher{...}, student{...}, questions, questions_with_pairs},
    feedback{views{name: {mean, present, missing, histogram[10 bins over 0..1]}}, buckets, judge,
             fused_mean, disagreements, failure_kinds},
    transitions{previous, rows{from (easy|medium|hard|new): {to (easy|medium|hard|left): n}}},
    synthesis{funnel[[step, n]], rejections[{reason, count, example}], next_pool, note},
    findings{teacher|student|student_after: [[code, n]]},
    training{summary{...}, log[{step, loss, nll, sfim, contrastive, margin}]},
    questions[{id, prompt, bucket, bucket_history, fused, views, attempts, passed, failure_kinds,
               teacher_passed[passed, of], sample_stage, sample{id, code, finish_reason, status,
               passed, tests[passed, of], message, findings}, judge{raw, error, overall, judged}}]
Run report: schema_version, kind="run", run{...}, status, missing["<round>: <why>"],
    rounds[each planned round: its round report without schema_version/kind/run/questions]
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from iterkd.feedback import VIEWS
from iterkd.report.drilldown import questions
from iterkd.report.sources import ReportError, RunSource, StageInfo, normalize_label
from iterkd.rundir import BASELINE

SCHEMA_VERSION = 1
BINS = 10  # view histograms: ten equal bins over [0, 1]
TOP = 10  # rows in the "top codes / reasons" tables
BUCKETS = ("easy", "medium", "hard")
# The synthesis funnel's order (iterkd.synthesis.screening.FUNNEL; a test keeps them equal):
# summary.json is written with sorted keys, and importing the synthesis package costs seconds.
FUNNEL = (
    "requested", "generated", "parsed", "validated", "not_duplicate", "not_contaminated",
    "perplexity_ok", "quality_ok", "accepted",
)  # fmt: skip
TRAIN_COLUMNS = ("step", "loss", "nll", "sfim", "contrastive", "margin")
GENERATION_KEYS = ("generation", "judge_generation", "quality_generation")


def run_report(source: RunSource) -> dict[str, Any]:
    """The run-level report: every round the config plans (those not started marked pending),
    each as its round report without the per-question drill-down."""
    started = set(source.started_rounds())
    rounds = []
    for label in source.all_rounds():
        if label in started:
            report = round_report(source, label)
            rounds.append({k: v for k, v in report.items() if k not in RUN_LEVEL_DROPS})
        else:
            rounds.append(pending_round(source, label))
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "run": source.info(),
        "status": _run_status(rounds, source.rounds_planned),
        "rounds": rounds,
        "missing": [f"{r['round']}: {why}" for r in rounds for why in r["missing"]],
    }


RUN_LEVEL_DROPS = frozenset({"schema_version", "kind", "run", "questions"})


def pending_round(source: RunSource, label: str) -> dict[str, Any]:
    """A planned round that has not started: every stage pending, no section."""
    stages = source.stages_of(label)
    pending = {"status": "pending", "seconds": None, "attempts": 0, "error": None, "note": None}
    return {
        "round": label,
        "status": "pending",
        "stages": {s: dict(pending) for s in stages},
        "evaluation": None,
        "time": dict.fromkeys(stages),
        "tokens": {s: {"prompt": None, "completion": None, "trained": None} for s in stages},
        "missing": ["not started"],
    }


def _run_status(rounds: list[dict[str, Any]], planned: int | None) -> str:
    statuses = [r["status"] for r in rounds]
    if all(s == "complete" for s in statuses) and len(rounds) == (planned or 0) + 1:
        return "complete"
    return next(
        (s for s in ("failed", "missing", "interrupted", "running") if s in statuses), "partial"
    )


def round_report(source: RunSource, round_: int | str | None) -> dict[str, Any]:
    """The report of one round (`baseline`, or a round number / label) of an open run."""
    label = normalize_label(round_)
    started = source.started_rounds()
    if label not in started:
        raise ReportError(
            f"{source.run.path}: round {label} does not exist "
            f"(rounds: {', '.join(started) or 'none yet'})"
        )
    before = len(source.problems)  # what this round's reading adds goes to its `missing`
    stages = {s: source.stage(label, s) for s in source.stages_of(label)}
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "round",
        "run": source.info(),
        "round": label,
        "status": round_status(stages),
        "stages": {s: _stage_entry(info) for s, info in stages.items()},
        "evaluation": evaluation(source, label, stages["evaluate"]),
        "time": {s: info.seconds for s, info in stages.items()},
        "tokens": {s: tokens(source, label, s, info) for s, info in stages.items()},
    }
    if label != BASELINE:
        report |= _cycle_sections(source, label, stages)
    report["missing"] = _missing(stages) + source.problems[before:]
    return report


def _cycle_sections(source: RunSource, label: str, stages: dict[str, StageInfo]) -> dict[str, Any]:
    return {
        "verify": verify(stages["verify"]),
        "feedback": feedback(source, label, stages["feedback"]),
        "transitions": transitions(source, label, stages["feedback"]),
        "synthesis": synthesis(source, label, stages["synthesize"]),
        "findings": findings(source, label, stages),
        "training": training(source, label, stages["train"]),
        "questions": questions(source, label, stages),
    }


def round_status(stages: dict[str, StageInfo]) -> str:
    statuses = {info.status for info in stages.values()}
    if statuses == {"complete"}:
        return "complete"
    for word in ("failed", "missing", "interrupted", "running"):
        if word in statuses:
            return word
    return "partial" if "complete" in statuses else "pending"


def _stage_entry(info: StageInfo) -> dict[str, Any]:
    note = (info.summary or {}).get("note")
    return {
        "status": info.status,
        "seconds": info.seconds,
        "attempts": info.attempts,
        "error": info.error,
        "note": note,
    }


def _missing(stages: dict[str, StageInfo]) -> list[str]:
    return [info.why_missing(s) for s, info in stages.items() if not info.complete]


# ------------------------------------------------------------------ evaluation
def pass_at(summary: dict[str, Any] | None) -> dict[str, float]:
    """{"1": 0.25, "2": 0.4}: the summary's pass@k values, by k in number order."""
    pairs = [(k[5:], v) for k, v in (summary or {}).items() if k.startswith("pass@")]
    return {k: v for k, v in sorted(pairs, key=lambda kv: int(kv[0])) if _is_number(v)}


def evaluation(source: RunSource, label: str, info: StageInfo) -> dict[str, Any] | None:
    if info.summary is None:
        return None
    mine = pass_at(info.summary)
    out: dict[str, Any] = {
        "pass_at": mine,
        "questions": info.summary.get("questions"),
        "samples": info.summary.get("samples"),
    }
    if label != BASELINE:
        out["vs_baseline"] = _deltas(mine, _pass_of(source, BASELINE))
        rounds = source.started_rounds()
        previous = rounds[rounds.index(label) - 1]
        out["previous"] = previous
        out["vs_previous"] = _deltas(mine, _pass_of(source, previous))
    return out


def _pass_of(source: RunSource, label: str) -> dict[str, float] | None:
    info = source.stage(label, "evaluate")
    return pass_at(info.summary) if info.summary is not None else None


def _deltas(now: dict[str, float], then: dict[str, float] | None) -> dict[str, float] | None:
    if then is None:
        return None
    return {k: round(v - then[k], 6) for k, v in now.items() if k in then}


# ------------------------------------------------------------------ verify, feedback
def verify(info: StageInfo) -> dict[str, Any] | None:
    if info.summary is None:
        return None
    keys = ("teacher", "student", "questions", "questions_with_pairs")
    return {k: info.summary.get(k) for k in keys}


def feedback(source: RunSource, label: str, info: StageInfo) -> dict[str, Any] | None:
    if info.summary is None or not info.complete:
        return None
    records = source.jsonl(label, "feedback", "feedback.jsonl") or []
    summary = info.summary
    return {
        "views": {name: view_distribution(records, name) for name in VIEWS},
        "buckets": summary.get("buckets"),
        "judge": summary.get("judge"),
        "fused_mean": summary.get("fused_mean"),
        "disagreements": summary.get("disagreements"),
        "failure_kinds": summary.get("failure_kinds"),
    }


def view_distribution(records: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One view over the round's questions: a 10-bin histogram of the present values, and how
    many questions lack it (None: the analyzer was off, or no judge reply parsed)."""
    values = [v for r in records if _is_number(v := (r.get("views") or {}).get(name))]
    histogram = [0] * BINS
    for value in values:
        histogram[min(int(value * BINS), BINS - 1) if value > 0 else 0] += 1
    return {
        "mean": round(sum(values) / len(values), 6) if values else None,
        "present": len(values),
        "missing": len(records) - len(values),
        "histogram": histogram,
    }


def transitions(source: RunSource, label: str, info: StageInfo) -> dict[str, Any] | None:
    """Questions counted by (bucket last round -> bucket this round), from each record's bucket
    history; `new` is a question first seen this round, `left` one that left the pool."""
    if not info.complete:
        return None
    records = source.jsonl(label, "feedback", "feedback.jsonl")
    if records is None:
        return None
    rows: dict[str, dict[str, int]] = {b: dict.fromkeys((*BUCKETS, "left"), 0) for b in BUCKETS}
    rows["new"] = dict.fromkeys((*BUCKETS, "left"), 0)
    for record in records:
        history = [b for b in record.get("bucket_history") or [] if b in BUCKETS]
        if history:
            rows[history[-2] if len(history) > 1 else "new"][history[-1]] += 1
    previous = _previous_feedback(source, label)
    here = {r.get("question_id") for r in records}
    for record in previous or []:
        if record.get("question_id") not in here and record.get("bucket") in BUCKETS:
            rows[record["bucket"]]["left"] += 1
    return {"previous": _previous_label(label), "rows": rows}


def _previous_label(label: str) -> str | None:
    return None if int(label) == 0 else f"{int(label) - 1:03d}"


def _previous_feedback(source: RunSource, label: str) -> list[dict[str, Any]] | None:
    previous = _previous_label(label)
    if previous is None or not source.stage(previous, "feedback").complete:
        return None
    return source.jsonl(previous, "feedback", "feedback.jsonl")


# ------------------------------------------------------------------ synthesis, findings
def synthesis(source: RunSource, label: str, info: StageInfo) -> dict[str, Any] | None:
    if info.summary is None:
        return None
    funnel = info.summary.get("funnel") or {}
    order = [s for s in FUNNEL if s in funnel] + sorted(set(funnel) - set(FUNNEL))
    reasons = info.summary.get("rejections_by_reason") or {}
    examples = _reason_examples(source.jsonl(label, "synthesize", "rejected.jsonl") or [])
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return {
        "funnel": [[step, funnel[step]] for step in order],
        "rejections": [{"reason": r, "count": n, "example": examples.get(r)} for r, n in top],
        "next_pool": info.summary.get("next_pool"),
        "note": info.summary.get("note"),
    }


def _reason_examples(rejected: list[dict[str, Any]]) -> dict[str, str]:
    """Reason code -> the first full reason with that code (the summary counts codes only)."""
    out: dict[str, str] = {}
    for row in rejected:
        for reason in row.get("reasons") or []:
            out.setdefault(str(reason).split(":", 1)[0], str(reason))
    return out


def findings(
    source: RunSource, label: str, stages: dict[str, StageInfo]
) -> dict[str, list[list[Any]]]:
    """The most frequent ruff/pylint codes: the teacher's and the student's answers (verify),
    and the student's after this round's training (feedback)."""
    out: dict[str, list[list[Any]]] = {}
    if stages["verify"].complete:
        verdicts = source.jsonl(label, "verify", "verdicts.jsonl") or []
        for role in ("teacher", "student"):
            out[role] = top_codes(v for v in verdicts if v.get("role") == role)
    if stages["feedback"].complete:
        out["student_after"] = top_codes(source.jsonl(label, "feedback", "verdicts.jsonl") or [])
    return out


def top_codes(verdicts: Any) -> list[list[Any]]:
    counts = Counter(code for v in verdicts for code in v.get("finding_codes") or [])
    return [[code, n] for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]


# ------------------------------------------------------------------ training, time, tokens
def training(source: RunSource, label: str, info: StageInfo) -> dict[str, Any] | None:
    if info.summary is None:
        return None
    rows = source.jsonl(label, "train", "train_log.jsonl") or []
    log = [{k: row.get(k) for k in TRAIN_COLUMNS} for row in rows]
    keys = (
        "checkpoint",
        "objective",
        "steps",
        "sft_rows",
        "sfim_rows",
        "pairs",
        "loss_first",
        "loss_last",
    )
    summary = {k: info.summary.get(k) for k in (*keys, "margin_first", "margin_last", "note")}
    return {"summary": summary, "log": log}


def tokens(source: RunSource, label: str, stage: str, info: StageInfo) -> dict[str, int | None]:
    """Prompt tokens of the stage's answers (samples.jsonl), completion tokens of every model
    call it made (its summary's generation reports), and for train the tokens trained on."""
    summary = info.summary
    reports = [(summary or {}).get(key) for key in GENERATION_KEYS]
    completion = [r["completion_tokens"] for r in reports if isinstance(r, dict)]
    has_samples = (source.stage_dir(label, stage) / "samples.jsonl").is_file()
    samples = source.jsonl(label, stage, "samples.jsonl") if has_samples else None
    trained = (summary or {}).get("completion_tokens") if stage == "train" else None
    return {
        "prompt": sum(int(s.get("prompt_tokens") or 0) for s in samples) if samples else None,
        "completion": sum(completion) if completion else None,
        "trained": trained,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

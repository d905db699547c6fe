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
    extraction{stage (or "evaluate/greedy"): {status: n}} (answers by code-extraction outcome,
        iterkd.codeblocks: ok, no_code, no_entry_point, ...; {} for runs from before it was
        counted),
    evaluation{pass_at{k: v}, questions, samples, previous, vs_previous{k: d}, vs_baseline{k: d},
        greedy (greedy pass@1 or None), intervals{k|"greedy": [low, high]} (95 %, bootstrap over
        questions), changes{vs_previous|vs_baseline: {k|"greedy": {questions, before, after, delta,
        ci95, p_value, significant, test}}} (paired over the same questions; both empty for runs
        from before they were recorded)}
    and, except for the baseline:
    verify{teacher{...}, student{...}, questions, questions_with_pairs},
    feedback{views{name: {mean, present, missing, histogram[10 bins over 0..1]}}, buckets, judge,
             fused_mean, disagreements, failure_kinds,
             train_pass{questions, before{value, ci95}, after{value, ci95}, vs_round_start,
                        vs_baseline} (the student's pass@1 on the round's questions before and
                        after its training; None for runs from before it was measured)},
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

from iterkd.codeblocks import EXTRACTION_STATUSES
from iterkd.feedback import VIEWS
from iterkd.metrics import adjust_rounds, describe_change, describe_value
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
GENERATION_KEYS = ("generation", "judge_generation", "quality_generation", "greedy_generation")
GREEDY = "greedy_pass@1"  # iterkd.stages.evaluate.GREEDY (importing a stage costs seconds)


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
        "extraction": extraction(stages),
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
        **statistics(info.summary),
    }
    if label != BASELINE:
        out["vs_baseline"] = _deltas(mine, _pass_of(source, BASELINE))
        rounds = source.started_rounds()
        previous = rounds[rounds.index(label) - 1]
        out["previous"] = previous
        out["vs_previous"] = _deltas(mine, _pass_of(source, previous))
        out["changes"] = _adjusted_over_rounds(source, label, out["changes"])
    return out


def _adjusted_over_rounds(source: RunSource, label: str, changes: dict) -> dict:
    """Each change with its p-value adjusted (Holm) over the same change of every evaluated
    round: a report column is read as one family, so a round report and the run report say the
    same, and one round's p under 0.05 among several is not called an improvement."""
    evaluated = {r: statistics(s)["changes"] for r, s in _summaries(source, "evaluate").items()}
    adjusted: dict[str, dict] = {}
    for which, by_key in changes.items():
        family = {key: {r: c[which][key] for r, c in evaluated.items() if key in c[which]}
                  for key in by_key}  # fmt: skip
        adjusted[which] = {key: adjust_rounds(family[key])[label] for key in by_key}
    return adjusted


def _summaries(source: RunSource, stage: str) -> dict[str, dict[str, Any]]:
    """{round: summary} of `stage` in every started round (not the baseline) that has one."""
    infos = {r: source.stage(r, stage) for r in source.started_rounds() if r != BASELINE}
    return {r: info.summary for r, info in infos.items() if info.summary is not None}


def statistics(summary: dict[str, Any]) -> dict[str, Any]:
    """What the evaluate step measured beyond pass@k, keyed like `pass_at` ("1", "2", and
    "greedy" for greedy pass@1): `greedy` (None when off), `intervals{key: [low, high]}`, and
    `changes{vs_previous|vs_baseline: {key: paired comparison}}`. Empty for runs from before
    these were recorded: they show values and deltas alone."""
    intervals = summary.get("intervals") or {}
    changes = {
        which: {_key(m): c for m, c in (summary.get(which) or {}).items() if isinstance(c, dict)}
        for which in ("vs_previous", "vs_baseline")
    }
    return {
        "greedy": summary.get(GREEDY) if _is_number(summary.get(GREEDY)) else None,
        "intervals": {_key(m): list(ci) for m, ci in intervals.items()},
        "changes": changes,
    }


def _key(metric: str) -> str:
    """A summary's metric name as the report keys it: "pass@2" -> "2", greedy -> "greedy"."""
    return "greedy" if metric == GREEDY else metric.removeprefix("pass@")


def value_text(value: float | None, ci95: Any = None) -> str | None:
    """A measured rate for a table cell, with its interval where one was recorded."""
    return None if value is None else describe_value(value, ci95)


STATISTICS_NOTE = (
    "[low, high]: 95 % interval, bootstrap over questions; changes: delta [95 % interval], "
    "p-value of a paired sign-flip test over the questions both evaluations share, and over "
    "several rounds Holm's adjusted p-value for the column "
    '("not significant" where the p-value, adjusted where there is one, is >= 0.05)'
)


def evaluation_rows(evaluation: dict[str, Any]) -> list[list[str | None]]:
    """[metric, value with interval, change vs previous, change vs baseline] per pass@k, and for
    greedy pass@1 when it was measured: the rows both renderers show."""
    return [
        [name, pass_cell(evaluation, key), change_text(evaluation, "vs_previous", key),
         change_text(evaluation, "vs_baseline", key)]
        for name, key in pass_columns([evaluation])
    ]  # fmt: skip


def pass_columns(evaluations: list[dict[str, Any] | None]) -> list[tuple[str, str]]:
    """(name, key) of every rate the evaluations measured: pass@k by k, then greedy pass@1."""
    ks = {k for e in evaluations for k in ((e or {}).get("pass_at") or {})}
    columns = [(f"pass@{k}", k) for k in sorted(ks, key=int)]
    if any((e or {}).get("greedy") is not None for e in evaluations):
        columns.append(("greedy pass@1", "greedy"))
    return columns


def pass_cell(evaluation: dict[str, Any] | None, key: str) -> str | None:
    """One measured rate with its interval (where recorded); None where it was not measured."""
    evaluation = evaluation or {}
    measured = {"greedy": evaluation.get("greedy"), **(evaluation.get("pass_at") or {})}
    return value_text(measured.get(key), (evaluation.get("intervals") or {}).get(key))


def has_statistics(evaluations: list[dict[str, Any] | None]) -> bool:
    """Whether any evaluation recorded intervals: the note that explains them is shown then."""
    return any((e or {}).get("intervals") for e in evaluations)


def train_pass_row(train_pass: dict[str, Any]) -> list[Any]:
    """[questions, before, after, change, vs round 0's student]: the student's pass@1 on the
    round's own questions before and after the round's training."""
    before, after = train_pass.get("before") or {}, train_pass.get("after") or {}
    baseline = train_pass.get("vs_baseline")
    return [
        train_pass.get("questions"),
        value_text(before.get("value"), before.get("ci95")),
        value_text(after.get("value"), after.get("ci95")),
        _described(train_pass.get("vs_round_start")),
        _described(baseline) if baseline else "no question shared with round 000",
    ]


def _described(comparison: dict[str, Any] | None) -> str | None:
    return describe_change(comparison) if comparison else None


def change_text(evaluation: dict[str, Any], which: str, key: str) -> str | None:
    """A change for a table cell: the paired comparison's delta, interval and p-value ("not
    significant" where it is not), or the bare delta of a run from before the tests."""
    comparison = ((evaluation.get("changes") or {}).get(which) or {}).get(key)
    if comparison is not None:
        return describe_change(comparison)
    delta = (evaluation.get(which) or {}).get(key)
    return None if delta is None else f"{delta:+.3f}"


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
        # None for runs from before it was measured
        "train_pass": _train_pass_adjusted(source, label, summary.get("train_pass")),
    }


def _train_pass_adjusted(source: RunSource, label: str, train_pass: dict | None) -> dict | None:
    """The round's train-question changes with Holm's p-values over every round's same change
    (as `_adjusted_over_rounds` does for the held-out ones)."""
    if not isinstance(train_pass, dict):
        return train_pass
    rounds = {r: s["train_pass"] for r, s in _summaries(source, "feedback").items()
              if isinstance(s.get("train_pass"), dict)}  # fmt: skip
    adjusted = dict(train_pass)
    for which in ("vs_round_start", "vs_baseline"):
        family = {r: t[which] for r, t in rounds.items() if isinstance(t.get(which), dict)}
        if label in family:
            adjusted[which] = adjust_rounds(family)[label]
    return adjusted


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
    samples = None
    for name in ("samples.jsonl", "greedy_samples.jsonl"):  # greedy: evaluate.greedy's answers
        if (source.stage_dir(label, stage) / name).is_file():
            samples = (samples or []) + (source.jsonl(label, stage, name) or [])
    trained = (summary or {}).get("completion_tokens") if stage == "train" else None
    return {
        "prompt": sum(int(s.get("prompt_tokens") or 0) for s in samples) if samples else None,
        "completion": sum(completion) if completion else None,
        "trained": trained,
    }


# ------------------------------------------------------------------ code extraction
EXTRACTION_NOTE = (
    "usable: the answer gave a program defining the function asked for; no_code: nothing that "
    "looks like code; no_entry_point: code without that function; syntax_error: it does not "
    "parse; truncated: cut at max tokens before the function was complete; skipped: the prompt "
    "did not fit the context"
)


def extraction(stages: dict[str, StageInfo]) -> dict[str, dict[str, int]]:
    """Per stage that sampled answers (`<stage>/<kind>` for a stage's other generations, e.g.
    `evaluate/greedy`), its answers by extraction outcome, as the summary counted them."""
    out: dict[str, dict[str, int]] = {}
    for stage, info in stages.items():
        for key in GENERATION_KEYS:
            report = (info.summary or {}).get(key)
            counts = report.get("extraction") if isinstance(report, dict) else None
            if isinstance(counts, dict) and counts:
                name = stage if key == "generation" else f"{stage}/{key.split('_')[0]}"
                out[name] = {k: v for k, v in counts.items() if _is_number(v)}
    return out


def extraction_rows(counts: dict[str, dict[str, int]]) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of a round's extraction table: per stage, answers, usable ones, and a
    column per failure seen in any stage."""
    seen = {status for by_status in counts.values() for status in by_status}
    known = [s for s in EXTRACTION_STATUSES if s in seen and s != "ok"]
    failures = known + sorted(seen - set(EXTRACTION_STATUSES))  # "unknown": an older record
    rows = [
        [stage, sum(by_status.values()), by_status.get("ok", 0),
         *(by_status.get(f, 0) for f in failures)]
        for stage, by_status in counts.items()
    ]  # fmt: skip
    return ["stage", "answers", "usable", *failures], rows


def run_extraction_rows(rounds: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of the run's table: per round, for each stage, "answers without usable
    code / answers"."""
    stages = list(dict.fromkeys(s for r in rounds for s in r.get("extraction") or {}))
    rows = []
    for r in rounds:
        counts = r.get("extraction") or {}
        if counts:
            rows.append([r["round"], *(_unusable(counts.get(s)) for s in stages)])
    return ["round", *stages], rows


def _unusable(by_status: dict[str, int] | None) -> str | None:
    if not by_status:
        return None
    total = sum(by_status.values())
    return f"{total - by_status.get('ok', 0)} / {total}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

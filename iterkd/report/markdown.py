"""Markdown reports: the same content as the HTML ones, as tables and text (plots become the
numbers behind them), for a terminal, a pull request or a notebook.

    render_round_md(round_report_dict) -> str
    render_run_md(run_report_dict) -> str
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from iterkd.report.data import (
    BUCKETS,
    EXTRACTION_NOTE,
    STATISTICS_NOTE,
    change_text,
    evaluation_rows,
    extraction_rows,
    has_statistics,
    pass_cell,
    pass_columns,
    run_extraction_rows,
    train_pass_row,
)
from iterkd.report.htmlkit import visible
from iterkd.rundir import STAGES

STAGE_OF = {
    "evaluation": "evaluate", "verify": "verify", "feedback": "feedback",
    "transitions": "feedback", "synthesis": "synthesize", "training": "train",
    "questions": "teacher",
}  # fmt: skip
MAX_LINES = 12  # lines of a prompt or an answer shown per question


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _missing_lines(missing: Sequence[str]) -> str:
    return "".join(f"- missing: {line}\n" for line in missing)


def _or_missing(report: dict[str, Any], key: str, render) -> str:
    if report.get(key) is not None:
        return render(report[key])
    entry = report["stages"].get(STAGE_OF[key]) or {}
    error = f": {entry['error']}" if entry.get("error") else ""
    return f"*missing: {STAGE_OF[key]} {entry.get('status', 'pending')}{error}*\n"


# ------------------------------------------------------------------ round
def render_round_md(report: dict[str, Any]) -> str:
    run, label = report["run"], report["round"]
    out = [
        f"# {run['name']} · round {label} ({report['status']})\n",
        f"`{run['path']}` · config {run['config_hash']}\n",
        _missing_lines(report["missing"]),
        "## Stages\n",
        _stages(report),
        "## Evaluation\n",
        _or_missing(report, "evaluation", _evaluation),
        "## Answers without usable code\n",
        _extraction(report.get("extraction") or {}),
    ]
    if label != "baseline":
        out += [
            "## Verification\n", _or_missing(report, "verify", _verify),
            "## Feedback views\n", _or_missing(report, "feedback", _feedback),
            "## Bucket transitions\n", _or_missing(report, "transitions", _matrix),
            "## Synthesis funnel\n", _or_missing(report, "synthesis", _synthesis),
            "## Static-analysis codes\n", _findings(report.get("findings") or {}),
            "## Training\n", _or_missing(report, "training", _training),
            "## Questions\n", _or_missing(report, "questions", _questions),
        ]  # fmt: skip
    return visible("\n".join(part for part in out if part))


def _stages(report: dict[str, Any]) -> str:
    rows = []
    for stage, entry in report["stages"].items():
        tokens = report["tokens"].get(stage) or {}
        rows.append([stage, entry["status"], entry["seconds"], entry["attempts"],
                     tokens.get("prompt"), tokens.get("completion"), tokens.get("trained"),
                     entry.get("error") or entry.get("note")])  # fmt: skip
    head = ["stage", "status", "seconds", "attempts", "prompt tok", "completion tok",
            "trained tok", "note / error"]  # fmt: skip
    return table(head, rows)


def _evaluation(evaluation: dict[str, Any]) -> str:
    head = ["metric", "value", f"vs previous ({evaluation.get('previous')})", "vs baseline"]
    return table(head, evaluation_rows(evaluation)) + _note([evaluation])


def _note(evaluations: list[dict[str, Any] | None]) -> str:
    return f"\n{STATISTICS_NOTE}\n" if has_statistics(evaluations) else ""


TRAIN_PASS_HEAD = ["questions", "before training", "after training", "change",
                   "vs round 000's student"]  # fmt: skip


def _train_pass(train_pass: dict[str, Any] | None) -> str:
    if not train_pass:
        return ""  # a run from before train-question pass rates were measured
    return "\nStudent pass@1 on the round's questions:\n\n" + table(
        TRAIN_PASS_HEAD, [train_pass_row(train_pass)]
    )


def _extraction(counts: dict[str, dict[str, int]]) -> str:
    if not counts:
        return "*no stage has counted its answers' extraction outcomes (yet)*\n"
    head, rows = extraction_rows(counts)
    return table(head, rows) + f"\n{EXTRACTION_NOTE}\n"


def _verify(verify: dict[str, Any]) -> str:
    rows = [
        [role, (verify.get(role) or {}).get("samples"), (verify.get(role) or {}).get("passed"),
         (verify.get(role) or {}).get("pass_rate")]
        for role in ("teacher", "student")
    ]  # fmt: skip
    return table(["answers of", "samples", "passed", "pass rate"], rows)


def _feedback(feedback: dict[str, Any]) -> str:
    views = feedback["views"]
    rows = [
        [name, v["mean"], v["present"], v["missing"], " ".join(map(str, v["histogram"]))]
        for name, v in views.items()
    ]
    out = table(["view", "mean", "present", "missing", "histogram (10 bins over 0..1)"], rows)
    judge = feedback.get("judge")
    if isinstance(judge, dict):
        keys = ("asked", "parsed", "missing", "not_judged")
        out += "\n" + table(["judge", *keys], [["answers", *(judge.get(k) for k in keys)]])
    buckets = feedback.get("buckets") or {}
    out += "\n" + table(list(BUCKETS), [[buckets.get(b) for b in BUCKETS]])
    return out + _train_pass(feedback.get("train_pass"))


def _matrix(transitions: dict[str, Any]) -> str:
    columns = [*BUCKETS, "left"]
    rows = [[f"from {o}", *(row.get(c, 0) for c in columns)]
            for o, row in transitions["rows"].items()]  # fmt: skip
    return table(["bucket", *(f"to {c}" for c in columns)], rows)


def _synthesis(synthesis: dict[str, Any]) -> str:
    peak = max((n for _, n in synthesis["funnel"]), default=0) or 1
    rows = [[step, n, "█" * round(20 * n / peak)] for step, n in synthesis["funnel"]]
    out = table(["step", "candidates", ""], rows)
    reasons = [[r["reason"], r["count"], r.get("example")] for r in synthesis["rejections"]]
    if reasons:
        out += "\n" + table(["rejection reason", "candidates", "example"], reasons)
    return out + (f"\n{synthesis['note']}\n" if synthesis.get("note") else "")


def _findings(findings: dict[str, list[list[Any]]]) -> str:
    if not findings:
        return "*missing: verify and feedback not complete*\n"
    rows = [
        [who, ", ".join(f"{c} x{n}" for c, n in codes) or None] for who, codes in findings.items()
    ]
    return table(["answers of", "top codes"], rows)


def _training(training: dict[str, Any]) -> str:
    summary = training["summary"]
    out = table(list(summary), [list(summary.values())])
    columns = ["step", "loss", "nll", "sfim", "contrastive", "margin"]
    rows = [[row.get(k) for k in columns] for row in training["log"]]
    return out + "\n" + table(columns, rows)


def _questions(questions: list[dict[str, Any]]) -> str:
    return "\n".join(_question(q) for q in questions) or "*the pool is empty*\n"


def _question(q: dict[str, Any]) -> str:
    sample, judge = q.get("sample"), q.get("judge")
    lines = [
        f"### {q['id']} · bucket {fmt(q.get('bucket'))} · fused {fmt(q.get('fused'))} · "
        f"passed {fmt(q.get('passed'))}/{fmt(q.get('attempts'))}\n",
        _block(q["prompt"]),
    ]
    if sample:
        tests = sample.get("tests") or [None, None]
        lines.append(
            f"Answer `{sample.get('id')}` ({q.get('sample_stage')}): {sample.get('status')}, "
            f"tests {tests[0]}/{tests[1]}; {sample.get('message') or 'no message'}; "
            f"findings: {', '.join(sample.get('findings') or []) or 'none'}\n"
        )
        lines.append(_block(sample.get("code")))
    if judge:
        lines.append(f"Judge: overall {fmt(judge.get('overall'))}; {judge.get('error') or ''}\n")
        lines.append(_block(judge.get("raw")))
    return "\n".join(lines)


def _block(text: str | None) -> str:
    shown = (text or "").splitlines()
    more = f"\n… ({len(shown) - MAX_LINES} more lines)" if len(shown) > MAX_LINES else ""
    body = "\n".join(shown[:MAX_LINES])
    # a fence longer than any backtick run inside, so an answer's own ``` never closes it
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", body)), default=0))
    return f"{fence}\n{body}{more}\n{fence}\n"


# ------------------------------------------------------------------ run
def render_run_md(report: dict[str, Any]) -> str:
    run, rounds = report["run"], report["rounds"]
    return visible("\n".join([
        f"# {run['name']} ({report['status']})\n",
        f"`{run['path']}` · iterkd {run['iterkd_version']} · config {run['config_hash']} · "
        f"{run.get('rounds_planned')} rounds planned\n",
        _missing_lines(report["missing"]),
        "## pass@k per round\n", _run_pass(rounds),
        "## Train-question pass@1 per round\n", _run_train_pass(rounds),
        "## Seconds per stage\n", _run_time(rounds),
        "## Answers without usable code per round\n", _run_extraction(rounds),
        "## Feedback\n", _run_feedback(rounds),
        "## Synthesis funnel\n", _run_funnel(rounds),
        "## Training\n", _run_training(rounds),
    ]))  # fmt: skip


def _run_pass(rounds: list[dict[str, Any]]) -> str:
    evaluations = [r.get("evaluation") for r in rounds]
    columns = pass_columns(evaluations)
    rows = []
    for r, evaluation in zip(rounds, evaluations, strict=True):
        rows.append([r["round"], *(pass_cell(evaluation, key) for _, key in columns),
                     r["status"], change_text(evaluation or {}, "vs_previous", "1"),
                     change_text(evaluation or {}, "vs_baseline", "1")])  # fmt: skip
    head = ["round", *(name for name, _ in columns), "status", "Δ pass@1 vs prev", "Δ vs baseline"]
    return table(head, rows) + _note(evaluations)


def _run_train_pass(rounds: list[dict[str, Any]]) -> str:
    rows = [[r["round"], *train_pass_row(r["feedback"]["train_pass"])]
            for r in rounds if (r.get("feedback") or {}).get("train_pass")]  # fmt: skip
    if not rows:
        return "*missing: no round has measured it yet*\n"
    return table(["round", *TRAIN_PASS_HEAD], rows)


def _run_time(rounds: list[dict[str, Any]]) -> str:
    rows = []
    for r in rounds:
        cells = [
            r["time"].get(s) if r["stages"].get(s, {}).get("status") == "complete"
            else (r["stages"].get(s) or {}).get("status", "")
            for s in STAGES
        ]  # fmt: skip
        rows.append([r["round"], *cells])
    return table(["round", *STAGES], rows)


def _run_extraction(rounds: list[dict[str, Any]]) -> str:
    head, rows = run_extraction_rows(rounds)
    if not rows:
        return "*missing: no round has counted extraction outcomes yet*\n"
    return table(head, rows) + "\nper stage: answers without usable code / answers\n"


def _run_feedback(rounds: list[dict[str, Any]]) -> str:
    rows = []
    for r in rounds:
        fb = r.get("feedback")
        if fb is None:
            continue
        means = {n: v["mean"] for n, v in fb["views"].items()}
        buckets = fb.get("buckets") or {}
        rows.append([r["round"], *means.values(), *(buckets.get(b) for b in BUCKETS)])
        names = list(means)
    if not rows:
        return "*missing: no round has feedback yet*\n"
    return table(["round", *(f"{n} mean" for n in names), *BUCKETS], rows)


def _run_funnel(rounds: list[dict[str, Any]]) -> str:
    done = [r for r in rounds if r.get("synthesis")]
    if not done:
        return "*missing: no round has synthesized yet*\n"
    steps = [step for step, _ in done[0]["synthesis"]["funnel"]]
    rows = [[step, *(dict(r["synthesis"]["funnel"]).get(step) for r in done)] for step in steps]
    return table(["step", *(r["round"] for r in done)], rows)


def _run_training(rounds: list[dict[str, Any]]) -> str:
    keys = ("steps", "sft_rows", "pairs", "loss_first", "loss_last", "margin_last")
    rows = [[r["round"], *(r["training"]["summary"].get(k) for k in keys)]
            for r in rounds if r.get("training")]  # fmt: skip
    return table(["round", *keys], rows) if rows else "*missing: no round has trained yet*\n"

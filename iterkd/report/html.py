"""Self-contained HTML reports: one file, inline CSS, charts as inline SVG, no script and no
reference to anything outside the file, so a report can be mailed, archived or opened offline.

    render_round_html(round_report_dict) -> str
    render_run_html(run_report_dict) -> str
"""

from __future__ import annotations

from html import escape
from typing import Any

from iterkd.report import svg
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
from iterkd.report.htmlkit import (
    Raw,
    Section,
    badge,
    cell,
    charts,
    heat,
    missing,
    page,
    pre,
    problems,
    table,
)
from iterkd.rundir import STAGES

STAGE_OF = {  # the stage a section's data comes from: its status says why the section is empty
    "evaluation": "evaluate", "verify": "verify", "feedback": "feedback",
    "transitions": "feedback", "synthesis": "synthesize", "training": "train",
    "questions": "teacher",
}  # fmt: skip


# ------------------------------------------------------------------ round page
def render_round_html(report: dict[str, Any]) -> str:
    label, run = report["round"], report["run"]
    header = Raw(
        f"<h1>{escape(run['name'])} · round {escape(label)} {badge(report['status'])}</h1>"
        f'<p class="muted">{escape(run["path"])} · config {escape(run["config_hash"])} · '
        f'<a href="../../report.html">run report</a></p>{problems(report["missing"])}'
    )
    sections: list[Section] = [
        ("stages", "Stages: time and tokens", stages_section(report)),
        ("evaluation", "Evaluation", evaluation_section(report)),
        ("extraction", "Answers without usable code", extraction_section(report)),
    ]
    if label != "baseline":
        sections += [
            ("verify", "Verification", _or_missing(report, "verify", verify_section)),
            ("feedback", "Feedback views", _or_missing(report, "feedback", feedback_section)),
            ("transitions", "Bucket transitions", _or_missing(report, "transitions", matrix)),
            ("synthesis", "Synthesis funnel", _or_missing(report, "synthesis", synthesis_section)),
            ("findings", "Static-analysis codes", findings_section(report.get("findings") or {})),
            ("training", "Training", _or_missing(report, "training", training_section)),
            ("questions", "Questions", _or_missing(report, "questions", questions_section)),
        ]
    return page(f"{run['name']} round {label}", header, sections)


def _or_missing(report: dict[str, Any], key: str, render) -> str:
    """The section, or why it is empty: its stage's status and error."""
    value = report.get(key)
    if value is not None:
        return render(value)
    stage = STAGE_OF[key]
    entry = report["stages"].get(stage) or {}
    error = f": {entry['error']}" if entry.get("error") else ""
    return missing(f"{stage} {entry.get('status', 'pending')}{error}")


def stages_section(report: dict[str, Any]) -> str:
    rows = []
    for stage, entry in report["stages"].items():
        tokens = report["tokens"].get(stage) or {}
        rows.append([
            stage, badge(entry["status"]), entry["seconds"], entry["attempts"],
            tokens.get("prompt"), tokens.get("completion"), tokens.get("trained"),
            entry.get("error") or entry.get("note"),
        ])  # fmt: skip
    headers = ["stage", "status", "seconds", "attempts", "prompt tok", "completion tok",
               "trained tok", "note / error"]  # fmt: skip
    return table(headers, rows) + charts(
        svg.bar_chart(_present(report["time"]), title="seconds per stage", unit=" s"),
        svg.bar_chart(_present(_token_totals(report["tokens"])), title="tokens per stage"),
    )


def _present(values: dict[str, Any]) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in values.items() if isinstance(v, int | float)]


def _token_totals(tokens: dict[str, dict[str, Any]]) -> dict[str, int | None]:
    out = {}
    for stage, parts in tokens.items():
        counted = [v for v in parts.values() if isinstance(v, int)]
        out[stage] = sum(counted) if counted else None
    return out


def evaluation_section(report: dict[str, Any]) -> str:
    evaluation = report.get("evaluation")
    if evaluation is None:
        return _or_missing(report, "evaluation", str)
    head = ["metric", "value", f"vs previous ({evaluation.get('previous')})", "vs baseline"]
    note = f"{evaluation.get('questions')} questions, {evaluation.get('samples')} samples"
    if has_statistics([evaluation]):
        note += f"; {STATISTICS_NOTE}"
    return table(head, evaluation_rows(evaluation)) + _muted(note)


def extraction_section(report: dict[str, Any]) -> str:
    counts = report.get("extraction") or {}
    if not counts:
        return missing("no stage has counted its answers' extraction outcomes (yet)")
    head, rows = extraction_rows(counts)
    return table(head, rows) + _muted(EXTRACTION_NOTE)


def _muted(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


TRAIN_PASS_HEAD = ["questions", "before training", "after training", "change",
                   "vs round 000's student"]  # fmt: skip


def train_pass_table(train_pass: dict[str, Any] | None) -> str:
    """The student's pass@1 on the round's questions before and after its training (nothing
    for a run from before it was measured)."""
    if not train_pass:
        return ""
    caption = "student pass@1 on the round's questions"
    return table(TRAIN_PASS_HEAD, [train_pass_row(train_pass)], caption=caption)


def verify_section(verify: dict[str, Any]) -> str:
    rows = []
    for role in ("teacher", "student"):
        entry = verify.get(role) or {}
        statuses = ", ".join(f"{k} {v}" for k, v in (entry.get("statuses") or {}).items())
        rows.append([role, entry.get("samples"), entry.get("passed"), entry.get("pass_rate"),
                     entry.get("questions_solved"), statuses])  # fmt: skip
    head = ["answers of", "samples", "passed", "pass rate", "questions solved", "statuses"]
    pairs = f"{verify.get('questions_with_pairs')} questions with (teacher-correct, student-fault)"
    return table(head, rows) + f'<p class="muted">{escape(pairs)} pairs</p>'


def feedback_section(feedback: dict[str, Any]) -> str:
    views = feedback["views"]
    plots = [
        svg.histogram(v["histogram"], title=f"{name} view (missing {v['missing']})")
        for name, v in views.items()
    ]
    rows = [[name, v["mean"], v["present"], v["missing"]] for name, v in views.items()]
    out = charts(*plots) + table(["view", "mean", "questions with it", "missing"], rows)
    judge = feedback.get("judge")
    if isinstance(judge, dict):
        keys = ("asked", "parsed", "missing", "not_judged")
        out += table(["judge", *keys], [["answers", *(judge.get(k) for k in keys)]])
    else:
        out += f'<p class="muted">judge: {escape(str(judge))}</p>'
    buckets = feedback.get("buckets") or {}
    extra = [feedback.get("fused_mean"), feedback.get("disagreements")]
    head = [*BUCKETS, "fused mean", "disagreements"]
    out += table(head, [[*(buckets.get(b) for b in BUCKETS), *extra]])
    return out + train_pass_table(feedback.get("train_pass"))


def matrix(transitions: dict[str, Any]) -> str:
    rows = transitions["rows"]
    peak = max((n for row in rows.values() for n in row.values()), default=0)
    columns = [*BUCKETS, "left"]
    body = [[f"from {origin}", *(heat(row.get(c, 0), peak) for c in columns)]
            for origin, row in rows.items()]  # fmt: skip
    previous = transitions.get("previous")
    rows_are = f"bucket in round {previous}" if previous else "first round: every question is new"
    return table(["bucket", *(f"to {c}" for c in columns)], body) + Raw(
        f'<p class="muted">rows: {escape(rows_are)}; columns: bucket this round '
        "(left: no longer in the pool)</p>"
    )


def synthesis_section(synthesis: dict[str, Any]) -> str:
    funnel = [(step, float(n)) for step, n in synthesis["funnel"]]
    out = charts(svg.bar_chart(funnel, title="synthesis funnel (candidates)"))
    rejections = [[r["reason"], r["count"], r.get("example")] for r in synthesis["rejections"]]
    out += table(["rejection reason", "candidates", "example"], rejections)
    pool = synthesis.get("next_pool") or {}
    if pool:
        out += table(list(pool), [list(pool.values())], caption="next pool")
    if synthesis.get("note"):
        out += f'<p class="muted">{escape(synthesis["note"])}</p>'
    return out


def findings_section(findings: dict[str, list[list[Any]]]) -> str:
    if not findings:
        return missing("verify and feedback not complete")
    titles = {"teacher": "teacher (verify)", "student": "student before training (verify)",
              "student_after": "student after training (feedback)"}  # fmt: skip
    plots = [
        svg.bar_chart([(c, float(n)) for c, n in codes], title=titles.get(who, who), width=380)
        for who, codes in findings.items()
    ]
    return charts(*plots)


def training_section(training: dict[str, Any]) -> str:
    log, summary = training["log"], training["summary"]
    # nll and contrastive beside the loss: a batch of pairs only has no nll, and its loss is
    # the weighted contrastive term alone, so the loss curve can jump between batch kinds
    losses = {key: _curve(log, key) for key in ("loss", "nll", "contrastive")}
    if any(row.get("sfim") is not None for row in log):  # SFIM rows are optional
        losses["sfim"] = _curve(log, "sfim")
    plots = [
        svg.line_chart(losses, title="loss per step"),
        svg.line_chart({"margin": _curve(log, "margin")}, title="margin per step"),
    ]
    head = list(summary)
    return charts(*plots) + table(head, [[summary[k] for k in head]])


def _curve(log: list[dict[str, Any]], key: str) -> list[tuple[float, float | None]]:
    return [(float(row["step"]), row.get(key)) for row in log if row.get("step") is not None]


def questions_section(questions: list[dict[str, Any]]) -> str:
    return "".join(_question(q) for q in questions) or missing("the pool is empty")


def _question(q: dict[str, Any]) -> str:
    sample, judge = q.get("sample"), q.get("judge")
    status = sample["status"] if sample else "no answer"
    head = (
        f"<summary><b>{escape(q['id'])}</b> · bucket {cell(q.get('bucket'))} · fused "
        f"{cell(q.get('fused'))} · passed {cell(q.get('passed'))}/{cell(q.get('attempts'))} · "
        f"{escape(str(status))}</summary>"
    )
    parts = [head, "<h3>Prompt</h3>", pre(q["prompt"])]
    if q.get("views"):
        parts.append(table(list(q["views"]), [list(q["views"].values())], caption="views"))
    if sample:
        parts += _sample_html(sample, q.get("sample_stage", "student"))
    if judge:
        parts.append(f"<h3>Judge (overall {cell(judge.get('overall'))})</h3>")
        if judge.get("error"):
            parts.append(f'<p class="muted">{escape(judge["error"])}</p>')
        parts.append(pre(judge.get("raw")))
    return "<details>" + "".join(parts) + "</details>"


def _sample_html(sample: dict[str, Any], stage: str) -> list[str]:
    tests = sample.get("tests") or [None, None]
    facts = [
        ["status", sample.get("status")], ["tests passed", f"{tests[0]}/{tests[1]}"],
        ["message", sample.get("message") or None], ["finish", sample.get("finish_reason")],
        ["findings", ", ".join(sample.get("findings") or []) or None],
    ]  # fmt: skip
    title = f"Student answer {escape(str(sample.get('id')))} ({escape(stage)} stage)"
    return [f"<h3>{title}</h3>", pre(sample.get("code")), table([], facts)]


# ------------------------------------------------------------------ run page
def render_run_html(report: dict[str, Any]) -> str:
    run, rounds = report["run"], report["rounds"]
    header = Raw(
        f"<h1>{escape(run['name'])} {badge(report['status'])}</h1>"
        f'<p class="muted">{escape(run["path"])} · iterkd {escape(run["iterkd_version"])} · '
        f"config {escape(run['config_hash'])} · {run.get('rounds_planned')} rounds planned</p>"
        f"{problems(report['missing'])}"
    )
    sections: list[Section] = [
        ("pass", "pass@k per round", run_pass_section(rounds)),
        ("train-pass", "Train-question pass@1 per round", run_train_pass_section(rounds)),
        ("rounds", "Rounds", run_rounds_section(rounds)),
        ("time", "Time and tokens per stage", run_time_section(rounds)),
        ("extraction", "Answers without usable code", run_extraction_section(rounds)),
        ("views", "Feedback views", run_views_section(rounds)),
        ("transitions", "Bucket transitions", run_transitions_section(rounds)),
        ("synthesis", "Synthesis funnel", run_funnel_section(rounds)),
        ("findings", "Static-analysis codes", run_findings_section(rounds)),
        ("training", "Training curves", run_training_section(rounds)),
    ]
    return page(f"{run['name']} report", header, sections)


def _ks(rounds: list[dict[str, Any]]) -> list[str]:
    ks = {k for r in rounds for k in ((r.get("evaluation") or {}).get("pass_at") or {})}
    return sorted(ks, key=int)


def run_pass_section(rounds: list[dict[str, Any]]) -> str:
    ks, labels = _ks(rounds), [r["round"] for r in rounds]
    series = {f"pass@{k}": [(float(i), _pass(r, k)) for i, r in enumerate(rounds)] for k in ks}
    plot = svg.line_chart(series, title="pass@k", x_labels=labels, y_range=(0.0, 1.0))
    evaluations = [r.get("evaluation") or {} for r in rounds]
    columns = pass_columns(evaluations)
    rows = [
        [r["round"], *(pass_cell(e, key) for _, key in columns),
         change_text(e, "vs_previous", "1"), change_text(e, "vs_baseline", "1"), badge(r["status"])]
        for r, e in zip(rounds, evaluations, strict=True)
    ]  # fmt: skip
    head = ["round", *(n for n, _ in columns), "Δ pass@1 vs previous", "Δ vs baseline", "status"]
    note = _muted(STATISTICS_NOTE) if has_statistics(evaluations) else ""
    return charts(plot) + table(head, rows) + note


def _pass(report: dict[str, Any], k: str) -> float | None:
    return ((report.get("evaluation") or {}).get("pass_at") or {}).get(k)


def run_train_pass_section(rounds: list[dict[str, Any]]) -> str:
    rows = [[r["round"], *train_pass_row(r["feedback"]["train_pass"])]
            for r in rounds if (r.get("feedback") or {}).get("train_pass")]  # fmt: skip
    if not rows:
        return missing("no round has measured it yet")
    return table(["round", *TRAIN_PASS_HEAD], rows)


def run_rounds_section(rounds: list[dict[str, Any]]) -> str:
    rows = []
    for r in rounds:
        cells = [_stage_cell(r["stages"].get(s)) for s in STAGES]
        link = r["round"] if r["status"] == "pending" else _round_link(r["round"])
        rows.append([link, badge(r["status"]), *cells])
    return table(["round", "status", *STAGES], rows)


def _round_link(label: str) -> Raw:
    return Raw(f'<a href="rounds/{escape(label)}/report.html">{escape(label)}</a>')


def _stage_cell(entry: dict[str, Any] | None) -> Any:
    if entry is None:
        return ""
    if entry["status"] == "complete":
        return entry["seconds"]
    return badge(entry["status"])


def run_time_section(rounds: list[dict[str, Any]]) -> str:
    totals: dict[str, float] = {}
    for r in rounds:
        for stage, seconds in r["time"].items():
            totals[stage] = totals.get(stage, 0.0) + (seconds or 0.0)
    tokens = [[r["round"], *(_tokens(r, s) for s in STAGES)] for r in rounds]
    bars = [(s, totals[s]) for s in STAGES if s in totals]
    plot = svg.bar_chart(bars, title="seconds per stage, all rounds", unit=" s")
    return charts(plot) + table(["tokens (prompt + completion; trained)", *STAGES], tokens)


def _tokens(report: dict[str, Any], stage: str) -> Any:
    parts = report["tokens"].get(stage)
    if parts is None:
        return ""
    counted = [v for k, v in parts.items() if k != "trained" and isinstance(v, int)]
    if parts.get("trained") is not None:
        return f"trained {parts['trained']}"
    return sum(counted) if counted else None


def run_extraction_section(rounds: list[dict[str, Any]]) -> str:
    head, rows = run_extraction_rows(rounds)
    if not rows:
        return missing("no round has counted extraction outcomes yet")
    return table(head, rows) + _muted("per stage: answers without usable code / answers")


def run_views_section(rounds: list[dict[str, Any]]) -> str:
    cycle = [r for r in rounds if r["round"] != "baseline"]
    names = list(dict.fromkeys(n for r in cycle for n in _views_of(r)))  # the VIEWS order
    labels = [r["round"] for r in cycle]
    series = {n: [(float(i), _view(r, n, "mean")) for i, r in enumerate(cycle)] for n in names}
    plot = svg.line_chart(series, title="view means", x_labels=labels, y_range=(0.0, 1.0))
    rows = []
    for r in cycle:
        fb = r.get("feedback") or {}
        buckets, judge = fb.get("buckets") or {}, fb.get("judge")
        judge_missing = judge.get("missing") if isinstance(judge, dict) else judge
        rows.append([r["round"], *(_view(r, n, "mean") for n in names),
                     *(buckets.get(b) for b in BUCKETS), judge_missing])  # fmt: skip
    head = ["round", *(f"{n} mean" for n in names), *BUCKETS, "judge missing"]
    return charts(plot) + table(head, rows)


def _views_of(report: dict[str, Any]) -> dict[str, Any]:
    return (report.get("feedback") or {}).get("views") or {}


def _view(report: dict[str, Any], name: str, key: str) -> Any:
    return (((report.get("feedback") or {}).get("views") or {}).get(name) or {}).get(key)


def run_transitions_section(rounds: list[dict[str, Any]]) -> str:
    parts = [
        f"<h3>round {escape(r['round'])}</h3>" + matrix(r["transitions"])
        for r in rounds
        if r.get("transitions")
    ]
    return "".join(parts) or missing("no round has feedback yet")


def run_funnel_section(rounds: list[dict[str, Any]]) -> str:
    done = [r for r in rounds if r.get("synthesis")]
    if not done:
        return missing("no round has synthesized yet")
    steps = [step for step, _ in done[0]["synthesis"]["funnel"]]
    rows = [[step, *(dict(r["synthesis"]["funnel"]).get(step) for r in done)] for step in steps]
    plots = [
        svg.bar_chart([(s, float(n)) for s, n in r["synthesis"]["funnel"]],
                      title=f"funnel, round {r['round']}", width=380)
        for r in done
    ]  # fmt: skip
    reasons = [
        [r["round"], x["reason"], x["count"]] for r in done for x in r["synthesis"]["rejections"]
    ]
    return (
        charts(*plots)
        + table(["step", *(r["round"] for r in done)], rows)
        + table(["round", "top rejection reason", "candidates"], reasons)
    )


def run_findings_section(rounds: list[dict[str, Any]]) -> str:
    rows = []
    for r in rounds:
        for who, codes in (r.get("findings") or {}).items():
            rows.append([r["round"], who, ", ".join(f"{c} x{n}" for c, n in codes) or None])
    return table(["round", "answers of", "top codes"], rows) if rows else missing("no findings")


def run_training_section(rounds: list[dict[str, Any]]) -> str:
    trained = [r for r in rounds if r.get("training")]
    if not trained:
        return missing("no round has trained yet")
    plots = [
        svg.line_chart(
            {f"round {r['round']}": _curve(r["training"]["log"], key) for r in trained},
            title=f"{key} per step",
        )
        for key in ("loss", "margin")
    ]
    keys = ("steps", "sft_rows", "pairs", "loss_first", "loss_last", "margin_last")
    rows = [[r["round"], *(r["training"]["summary"].get(k) for k in keys)] for r in trained]
    return charts(*plots) + table(["round", *keys], rows)

"""Markdown reports: the same content as the HTML ones, as tables and text (plots become the
numbers behind them), for a terminal, a pull request or a notebook.

    render_round_md(round_report_dict) -> str
    render_run_md(run_report_dict) -> str
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from iterkd.report.data import BUCKETS
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


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


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
    rows = [
        [f"pass@{k}", v, signed((evaluation.get("vs_previous") or {}).get(k)),
         signed((evaluation.get("vs_baseline") or {}).get(k))]
        for k, v in evaluation["pass_at"].items()
    ]  # fmt: skip
    head = ["metric", "value", f"vs previous ({evaluation.get('previous')})", "vs baseline"]
    return table(head, rows)


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
    return out + "\n" + table(list(BUCKETS), [[buckets.get(b) for b in BUCKETS]])


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
        "## Seconds per stage\n", _run_time(rounds),
        "## Feedback\n", _run_feedback(rounds),
        "## Synthesis funnel\n", _run_funnel(rounds),
        "## Training\n", _run_training(rounds),
    ]))  # fmt: skip


def _run_pass(rounds: list[dict[str, Any]]) -> str:
    ks = sorted({k for r in rounds for k in ((r.get("evaluation") or {}).get("pass_at") or {})},
                key=int)  # fmt: skip
    rows = []
    for r in rounds:
        evaluation = r.get("evaluation") or {}
        passes = evaluation.get("pass_at") or {}
        rows.append([r["round"], *(passes.get(k) for k in ks), r["status"],
                     signed((evaluation.get("vs_previous") or {}).get("1")),
                     signed((evaluation.get("vs_baseline") or {}).get("1"))])  # fmt: skip
    head = ["round", *(f"pass@{k}" for k in ks), "status", "Δ pass@1 vs prev", "Δ vs baseline"]
    return table(head, rows)


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

"""Writing a run's reports: `rounds/<r>/report.{json,md,html}` per round and
`report.{json,md,html}` at the run's root, each written atomically, plus the metrics sinks
(TensorBoard, W&B) when their packages are installed.

Reports live beside the stage folders, never inside one: a stage folder's bytes are hashed into
`state.json` and compared across resumed runs, and a report (it holds timings) would change them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iterkd.atomic import atomic_write_text
from iterkd.report.data import round_report, run_report
from iterkd.report.html import render_round_html, render_run_html
from iterkd.report.markdown import render_round_md, render_run_md
from iterkd.report.sources import RunSource, normalize_label

FORMATS = ("json", "md", "html")


@dataclass
class WrittenReports:
    """What `write_reports` wrote, and notes on what it skipped (e.g. no tensorboard)."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def render(report: dict[str, Any], fmt: str) -> str:
    """A report dict (round or run) as `json`, `md` or `html` text."""
    if fmt == "json":
        return json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    round_kind = report["kind"] == "round"
    if fmt == "md":
        return render_round_md(report) if round_kind else render_run_md(report)
    if fmt == "html":
        return render_round_html(report) if round_kind else render_run_html(report)
    raise ValueError(f"unknown report format {fmt!r} (formats: {', '.join(FORMATS)})")


def report_path(run_dir: str | Path, label: str | None, fmt: str) -> Path:
    """Where a report lives: `rounds/<label>/report.<fmt>`, or the run's root for label None."""
    root = Path(run_dir)
    return (root if label is None else root / "rounds" / label) / f"report.{fmt}"


def write_reports(
    run_dir: str | Path,
    round: int | str | None = None,  # the name the lead asked for, though it shadows round()
    *,
    formats: Sequence[str] = FORMATS,
    sinks: bool = True,
) -> WrittenReports:
    """Write the report of `round` (every started round when None) and the run-level report.

    Meant to be called by the controller after each round; it reads only, never raises for a
    missing or failed stage (the report marks it), and raises `ReportError` / `RunDirError`
    (ValueErrors) only when `run_dir` is no run or `round` does not exist. With `sinks`, the
    per-round metrics also go to TensorBoard / W&B when those packages are importable.
    """
    source = RunSource.open(run_dir)
    labels = source.started_rounds() if round is None else [normalize_label(round)]
    written = WrittenReports()
    reports = {label: round_report(source, label) for label in labels}
    for label, report in reports.items():
        written.paths += _write_all(report, run_dir, label, formats)
    whole = run_report(source)
    written.paths += _write_all(whole, run_dir, None, formats)
    if sinks:
        from iterkd.report.sinks import log_metrics

        written.notes += log_metrics(Path(run_dir), whole, only=None if round is None else labels)
    return written


def _write_all(
    report: dict[str, Any], run_dir: str | Path, label: str | None, formats: Sequence[str]
) -> list[Path]:
    paths = []
    for fmt in formats:
        path = report_path(run_dir, label, fmt)
        atomic_write_text(path, render(report, fmt))
        paths.append(path)
    return paths

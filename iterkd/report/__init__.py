"""Reports of a run: per round `rounds/<r>/report.{json,md,html}` and a run-level
`report.{json,md,html}`, built from what the stages wrote (see docs/cycle.md).

    write_reports(run_dir, round=None)   # after a round; round=None: every started round
    round_report(RunSource.open(run_dir), 0) / run_report(RunSource.open(run_dir))  # the dicts
"""

from iterkd.report.data import SCHEMA_VERSION, round_report, run_report
from iterkd.report.sources import ReportError, RunSource
from iterkd.report.write import WrittenReports, render, report_path, write_reports

__all__ = [
    "SCHEMA_VERSION",
    "ReportError",
    "RunSource",
    "WrittenReports",
    "render",
    "report_path",
    "round_report",
    "run_report",
    "write_reports",
]

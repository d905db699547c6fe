"""`iterkd report RUN [--round N] [--format md|json|html] [--open]`.

md and json go to stdout; html is written beside the round's stage folders (or at the run's
root) and its path printed. Errors are ValueErrors with the run or round named, which
`iterkd.cli.main` turns into one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser

FORMATS = ("md", "json", "html")


def add_report_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `report` subcommand to an `add_subparsers()` object; returns its parser."""
    parser = commands.add_parser(
        "report",
        help="a run's report (Markdown, JSON or self-contained HTML), or one round's",
        description=(
            "md and json go to stdout; html is written to RUN/rounds/<round>/report.html (or "
            "RUN/report.html for the whole run) and its path printed."
        ),
    )
    parser.add_argument("run_dir", help="the run directory, e.g. runs/tiny-cpu")
    parser.add_argument(
        "--round", help="a round number (0, 1, ...) or 'baseline'; default: the run"
    )
    parser.add_argument("--format", choices=FORMATS, default="md", help="default: md")
    parser.add_argument("--open", action="store_true", help="write the HTML and open it")
    parser.set_defaults(handler=report_command)
    return parser


def report_command(args: argparse.Namespace) -> int:
    from iterkd.atomic import atomic_write_text
    from iterkd.report.data import round_report, run_report
    from iterkd.report.sources import RunSource, normalize_label
    from iterkd.report.write import render, report_path

    source = RunSource.open(args.run_dir)
    label = None if args.round is None else normalize_label(args.round)
    report = run_report(source) if label is None else round_report(source, label)
    if args.format != "html":
        sys.stdout.write(render(report, args.format))
    if args.format == "html" or args.open:
        path = report_path(args.run_dir, label, "html")
        atomic_write_text(path, render(report, "html"))
        if args.format == "html":
            print(path)
        if args.open:
            webbrowser.open(path.resolve().as_uri())
    return 0

"""Run pylint once, in-process, over a batch of snippet files and split its results per file.

Why in-process: pylint's start-up (importing itself and astroid, registering ~400 checks,
building the AST of `builtins`) costs far more than linting a typical snippet, and a
subprocess per snippet pays it every time. One `Run` over all files pays it once.
(Named `pylint_runner`, not `pylint`, so that it can never shadow the installed package.)

pylint keeps process-global state (astroid's module cache, `sys.path` while it runs), so runs
are serialised by a lock and the astroid caches are cleared after each batch: a long-lived
orchestrator neither grows without bound nor sees a module cached by an earlier batch.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astroid
import pylint
from pylint.lint import Run
from pylint.reporters.json_reporter import JSON2Reporter

from iterkd.analysis.models import (
    CROSS_SNIPPET_PYLINT_CHECKS,
    AnalysisConfig,
    AnalysisError,
    Finding,
)

# The message types pylint counts per module (pylint.utils.linterstats.ModuleStats).
MESSAGE_TYPES: tuple[str, ...] = ("error", "warning", "refactor", "convention", "fatal", "info")
SYNTAX_SYMBOL = "syntax-error"
_LOCK = threading.Lock()


@dataclass
class PylintModuleResult:
    """pylint's view of one file: its messages and its per-module statistics."""

    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MESSAGE_TYPES, 0))
    statements: int = 0


class _ModuleTrackingReporter(JSON2Reporter):
    """JSON2Reporter that also remembers which module name pylint gave each file: per-module
    statistics are keyed by that name, and clean files have no message to read it from."""

    def __init__(self, output: io.StringIO) -> None:
        super().__init__(output)
        self.module_by_file: dict[str, str] = {}

    def on_set_current_module(self, module: str, filepath: str | None) -> None:
        if filepath is not None:
            self.module_by_file[Path(filepath).name] = module


def pylint_versions() -> dict[str, str]:
    """pylint and astroid versions: astroid's inference decides many of pylint's findings."""
    return {"pylint": pylint.__version__, "astroid": astroid.__version__}


def pylint_args(config: AnalysisConfig) -> list[str]:
    """Options of a batch run (shared with the benchmark's per-snippet runs)."""
    disabled = dict.fromkeys([*CROSS_SNIPPET_PYLINT_CHECKS, *config.pylint_disable])
    return [
        # An empty rcfile: no pylintrc/pyproject of the user or of the cwd may change findings.
        f"--rcfile={os.devnull}",
        "--jobs=1",
        "--persistent=n",
        "--reports=n",
        "--score=n",
        f"--py-version={config.python_version}",
        f"--max-line-length={config.line_length}",
        f"--disable={','.join(disabled)}",
    ]


def run_pylint(files: Sequence[Path], config: AnalysisConfig) -> dict[str, PylintModuleResult]:
    """Lint `files` in one in-process pylint run; results keyed by file name.

    Raises AnalysisError if pylint rejects its options or leaves a file out, rather than
    returning scores that silently mean something else.
    """
    stream = io.StringIO()
    reporter = _ModuleTrackingReporter(stream)
    args = [*map(str, files), *pylint_args(config), "--clear-cache-post-run=y"]
    with _LOCK:
        try:
            run = Run(args, reporter=reporter, exit=False)
        except SystemExit as exc:  # pylint exits on unusable options even with exit=False
            raise AnalysisError(f"pylint exited with status {exc.code}") from exc
    messages = parse_pylint_json(stream.getvalue())
    results = _collect_stats(files, reporter.module_by_file, run.linter.stats.by_module)
    _attach_messages(messages, results)
    return results


def parse_pylint_json(text: str) -> list[dict[str, Any]]:
    """The message list of pylint's json2 output (the same format as `--output-format=json2`)."""
    try:
        return list(json.loads(text)["messages"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnalysisError(f"unexpected pylint output: {text[:200]!r}") from exc


def _collect_stats(
    files: Sequence[Path], module_by_file: Mapping[str, str], by_module: Mapping[str, Any]
) -> dict[str, PylintModuleResult]:
    results: dict[str, PylintModuleResult] = {}
    for path in files:
        module = module_by_file.get(path.name)
        if module is None or module not in by_module:
            raise AnalysisError(f"pylint did not analyze {path.name}")
        stats = by_module[module]
        counts = {kind: int(stats[kind]) for kind in MESSAGE_TYPES}
        results[path.name] = PylintModuleResult(counts=counts, statements=int(stats["statement"]))
    return results


def _attach_messages(
    messages: Sequence[Mapping[str, Any]], results: Mapping[str, PylintModuleResult]
) -> None:
    """Give each message to its file. A message about no file of the batch is about pylint's
    options (e.g. an unknown message name in pylint_disable): that is a configuration bug."""
    stray: list[str] = []
    for message in messages:
        result = results.get(Path(message.get("absolutePath") or "").name)
        if result is None:
            stray.append(f"{message.get('symbol')}: {message.get('message')}")
        else:
            result.findings.append(message_to_finding(message))
    if stray:
        raise AnalysisError("pylint reported on its options: " + "; ".join(stray))


def message_to_finding(message: Mapping[str, Any]) -> Finding:
    """One json2 message as a Finding (column made 1-based, like ruff's).

    pylint names the module in some messages ("invalid syntax (s_000002, line 1)"); that
    generated name depends on the snippet's position in its batch, so it is replaced by
    "<snippet>" to keep a snippet's findings the same whatever batch it is in.
    """
    column = message.get("column")
    text = str(message.get("message", ""))
    if module := message.get("module"):
        text = text.replace(module, "<snippet>")
    return Finding(
        tool="pylint",
        code=message["messageId"],
        symbol=message.get("symbol"),
        category=message["type"],
        line=message.get("line"),
        column=None if column is None else column + 1,
        message=text,
    )


def pylint_score(result: PylintModuleResult) -> float:
    """pylint's default evaluation applied to one module's statistics:

        max(0, 0 if fatal else 10 - ((5 * error + warning + refactor + convention)
                                     / statement) * 10)

    A module that pylint could not parse (syntax-error) scores 0.0. A module without
    statements (empty, or only comments and a docstring) would divide by zero: like pylint's
    own json2 reporter, it is weighed as one statement, so it scores 10.0 without messages.
    """
    if any(f.symbol == SYNTAX_SYMBOL for f in result.findings):
        return 0.0
    counts = result.counts
    if counts["fatal"]:
        return 0.0
    penalty = 5 * counts["error"] + counts["warning"] + counts["refactor"] + counts["convention"]
    return max(0.0, 10.0 - (penalty / max(1, result.statements)) * 10.0)

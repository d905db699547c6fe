"""Static analysis of a whole batch of snippets with one run of each tool.

A round produces thousands of snippets; starting ruff and pylint once per snippet would spend
most of the time in start-up (see benchmarks/RESULTS.md). So all snippets of a call are
written into one fresh temporary directory and each tool runs once over it; findings are
then mapped back to the caller's ids. Checks that compare files with each other are disabled
so that a snippet's result does not depend on which other snippets share its batch.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iterkd.analysis.models import AnalysisConfig, AnalysisError, Finding, SnippetAnalysis
from iterkd.analysis.pylint_runner import (
    SYNTAX_SYMBOL,
    PylintModuleResult,
    pylint_score,
    pylint_versions,
    run_pylint,
)
from iterkd.analysis.ruff_runner import (
    SYNTAX_CATEGORY,
    ruff_counts,
    ruff_score,
    ruff_version,
    run_ruff,
)

INVALID_SOURCE = "invalid-source"


@dataclass(frozen=True)
class _Snippet:
    """A snippet ready for the tools: `source` is None when it cannot be handed to them, and
    `problem` then says why. `file_name` is generated: caller ids may hold '/', spaces, '..'
    or anything else, so they are never used as paths."""

    snippet_id: str
    file_name: str
    source: str | None
    problem: str | None


def analyze_snippets(
    snippets: Mapping[str, str | bytes], config: AnalysisConfig | None = None
) -> dict[str, SnippetAnalysis]:
    """Analyze every snippet with ruff and/or pylint; the result is keyed by the same ids.

    Each tool runs once for the whole mapping. Per-snippet problems (syntax errors, text
    that is not UTF-8 or holds NUL bytes) become findings of that snippet and never fail the
    batch; AnalysisError is raised only when a tool itself cannot run. Bytes are accepted
    and decoded as UTF-8, since raw model output may arrive undecoded.
    """
    cfg = config or AnalysisConfig()
    if not snippets:
        return {}
    prepared = [_prepare(index, sid, src) for index, (sid, src) in enumerate(snippets.items())]
    valid = [s for s in prepared if s.source is not None]
    ruff_results: dict[str, list[Finding]] = {}
    pylint_results: dict[str, PylintModuleResult] = {}
    if valid and (cfg.ruff or cfg.pylint):
        with tempfile.TemporaryDirectory(prefix="iterkd-analysis-") as tmp:
            files = _write_sources(Path(tmp), valid)
            if cfg.ruff:
                ruff_results = run_ruff(Path(tmp), cfg)
            if cfg.pylint:
                pylint_results = run_pylint(files, cfg)
    return {s.snippet_id: _assemble(s, ruff_results, pylint_results, cfg) for s in prepared}


def analyzer_versions() -> dict[str, str]:
    """Versions of everything findings depend on; store them with a round's scores, because
    a new ruff/pylint/astroid release changes findings and so scores."""
    try:
        ruff = ruff_version()
    except AnalysisError:
        ruff = "not found"
    return {"ruff": ruff, **pylint_versions(), "python": platform.python_version()}


def safe_file_name(index: int) -> str:
    """File name of the index-th snippet of a batch: a valid, unique Python module name."""
    return f"s_{index:06d}.py"


def _prepare(index: int, snippet_id: str, source: str | bytes) -> _Snippet:
    text, problem = _as_text(source)
    if text is not None and "\x00" in text:
        text, problem = None, "source contains NUL bytes; not analyzed"
    return _Snippet(snippet_id, safe_file_name(index), text, problem)


def _as_text(source: str | bytes) -> tuple[str | None, str | None]:
    """(text, None) for usable source, else (None, why)."""
    try:
        if isinstance(source, bytes):
            return source.decode("utf-8"), None
        source.encode("utf-8")  # lone surrogates (e.g. from errors="surrogateescape") fail
        return source, None
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        return None, f"source is not valid UTF-8 ({exc.reason}); not analyzed"


def _write_sources(directory: Path, snippets: list[_Snippet]) -> list[Path]:
    paths = []
    for snippet in snippets:
        path = directory / snippet.file_name
        # Bytes, not write_text: keep the snippet's own line endings exactly.
        path.write_bytes((snippet.source or "").encode("utf-8"))
        paths.append(path)
    return paths


def _assemble(
    snippet: _Snippet,
    ruff_results: Mapping[str, list[Finding]],
    pylint_results: Mapping[str, PylintModuleResult],
    cfg: AnalysisConfig,
) -> SnippetAnalysis:
    if snippet.source is None:
        return _invalid_source(snippet, cfg)
    ruff_findings = ruff_results.get(snippet.file_name, []) if cfg.ruff else []
    pylint_result = pylint_results[snippet.file_name] if cfg.pylint else None
    pylint_findings = pylint_result.findings if pylint_result else []
    findings = [*ruff_findings, *pylint_findings]
    return SnippetAnalysis(
        findings=findings,
        ruff_counts=ruff_counts(ruff_findings) if cfg.ruff else {},
        ruff_score=ruff_score(ruff_findings, snippet.source) if cfg.ruff else None,
        pylint_counts=dict(pylint_result.counts) if pylint_result else {},
        pylint_statements=pylint_result.statements if pylint_result else 0,
        pylint_score=pylint_score(pylint_result) if pylint_result else None,
        syntax_error=any(_is_syntax_error(f) for f in findings),
    )


def _is_syntax_error(finding: Finding) -> bool:
    if finding.tool == "ruff":
        return finding.category == SYNTAX_CATEGORY
    return finding.tool == "pylint" and finding.symbol == SYNTAX_SYMBOL


def _invalid_source(snippet: _Snippet, cfg: AnalysisConfig) -> SnippetAnalysis:
    """A snippet the tools never saw. It scores 0.0 for each enabled tool and counts as a
    syntax error: Python itself refuses such source (NUL bytes, undecodable text)."""
    finding = Finding(
        tool="iterkd",
        code=INVALID_SOURCE,
        symbol=INVALID_SOURCE,
        category="error",
        line=None,
        column=None,
        message=snippet.problem or INVALID_SOURCE,
    )
    return SnippetAnalysis(
        findings=[finding],
        ruff_counts={},
        ruff_score=0.0 if cfg.ruff else None,
        pylint_counts={},
        pylint_statements=0,
        pylint_score=0.0 if cfg.pylint else None,
        syntax_error=True,
    )

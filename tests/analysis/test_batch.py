"""Behaviour of analyze_snippets on real ruff and pylint runs (a few seconds in all)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pylint.lint import Run
from pylint.reporters.json_reporter import JSON2Reporter

from iterkd.analysis import (
    AnalysisConfig,
    AnalysisError,
    SnippetAnalysis,
    analyze_snippets,
    analyzer_versions,
)
from iterkd.analysis import batch as batch_module

CLEAN = '''def add(first: int, second: int) -> int:
    """Return the sum of two integers."""
    return first + second
'''

UNUSED_IMPORT = '''import os


def double(value: int) -> int:
    """Return twice the value."""
    return value * 2
'''

SYNTAX_ERROR = """def broken(:
    return 1
"""

# Clearly worse than CLEAN: bad names, unused argument, no docstring, too many branches.
MESSY = """def F(A, unused):
    if A == 1:
        return 1
    elif A == 2:
        return 2
    elif A == 3:
        return 3
    elif A == 4:
        return 4
    elif A == 5:
        return 5
    elif A == 6:
        return 6
    elif A == 7:
        return 7
    elif A == 8:
        return 8
    elif A == 9:
        return 9
    elif A == 10:
        return 10
    elif A == 11:
        return 11
    elif A == 12:
        return 12
    elif A == 13:
        return 13
    return 0
"""

# Long enough (well over pylint's 4 similarity lines) to trigger duplicate-code between files.
LONG = "\n".join(
    [
        "def summarize(values: list[int]) -> dict[str, float]:",
        '    """Return simple statistics of a list of integers."""',
        "    total = 0",
        "    count = 0",
        "    smallest = None",
        "    largest = None",
        "    for value in values:",
        "        total += value",
        "        count += 1",
        "        if smallest is None or value < smallest:",
        "            smallest = value",
        "        if largest is None or value > largest:",
        "            largest = value",
        "    mean = total / count if count else 0.0",
        '    return {"total": total, "count": count, "mean": mean,',
        '            "min": smallest or 0, "max": largest or 0}',
        "",
    ]
)

MIXED_BATCH = {
    "clean": CLEAN,
    "unused-import": UNUSED_IMPORT,
    "syntax-error": SYNTAX_ERROR,
    "messy": MESSY,
}


@pytest.fixture(scope="module")
def mixed() -> dict[str, SnippetAnalysis]:
    """One batch shared by several tests: a batch run costs ~0.5 s."""
    return analyze_snippets(MIXED_BATCH)


def codes(analysis: SnippetAnalysis, tool: str) -> set[str]:
    return {f.code for f in analysis.findings if f.tool == tool}


def test_results_are_keyed_by_the_callers_ids(mixed: dict[str, SnippetAnalysis]) -> None:
    assert list(mixed) == list(MIXED_BATCH)


def test_ruff_findings_map_back_to_their_snippet(mixed: dict[str, SnippetAnalysis]) -> None:
    assert codes(mixed["unused-import"], "ruff") == {"F401"}
    (finding,) = [f for f in mixed["unused-import"].findings if f.tool == "ruff"]
    assert (finding.line, finding.column, finding.symbol) == (1, 8, "unused-import")
    assert mixed["unused-import"].ruff_counts == {"F": 1}
    assert codes(mixed["clean"], "ruff") == set()
    assert mixed["clean"].ruff_counts == {}
    assert mixed["clean"].ruff_score == 10.0
    assert "F401" not in codes(mixed["messy"], "ruff")


def test_pylint_findings_map_back_to_their_snippet(mixed: dict[str, SnippetAnalysis]) -> None:
    assert codes(mixed["unused-import"], "pylint") == {"W0611"}
    assert mixed["clean"].findings == []
    messy = codes(mixed["messy"], "pylint")
    assert {"C0103", "W0613", "R0912", "C0116"} <= messy
    assert "W0611" not in messy


@pytest.mark.parametrize("snippet_id", ["clean", "unused-import", "messy"])
def test_pylint_score_is_pylints_formula_on_the_modules_stats(
    mixed: dict[str, SnippetAnalysis], snippet_id: str
) -> None:
    result = mixed[snippet_id]
    counts = result.pylint_counts
    assert result.pylint_statements > 0
    expected = max(
        0.0,
        10.0
        - (
            (5 * counts["error"] + counts["warning"] + counts["refactor"] + counts["convention"])
            / result.pylint_statements
        )
        * 10,
    )
    assert result.pylint_score == pytest.approx(expected)
    # The counts are those of this module's messages, not of the batch.
    pylint_findings = [f for f in result.findings if f.tool == "pylint"]
    assert sum(counts.values()) == len(pylint_findings)


def test_worse_snippet_scores_lower(mixed: dict[str, SnippetAnalysis]) -> None:
    clean, unused, messy = mixed["clean"], mixed["unused-import"], mixed["messy"]
    assert clean.pylint_score == 10.0
    assert unused.pylint_score is not None and messy.pylint_score is not None
    assert unused.pylint_score < clean.pylint_score
    assert messy.pylint_score < clean.pylint_score
    assert messy.ruff_score is not None and clean.ruff_score is not None
    assert messy.ruff_score < clean.ruff_score


def test_syntax_error_is_a_finding_of_both_tools(mixed: dict[str, SnippetAnalysis]) -> None:
    result = mixed["syntax-error"]
    assert result.syntax_error is True
    assert "invalid-syntax" in codes(result, "ruff")
    assert codes(result, "pylint") == {"E0001"}
    assert result.ruff_counts.get("syntax", 0) >= 1
    assert result.pylint_score == 0.0
    assert result.ruff_score == 0.0
    assert result.pylint_statements == 0
    # pylint's message names the module; the generated file name must not leak through.
    (pylint_syntax,) = [f for f in result.findings if f.tool == "pylint"]
    assert "<snippet>" in pylint_syntax.message and "s_0" not in pylint_syntax.message
    # ...and the rest of the batch is unaffected.
    assert not any(mixed[i].syntax_error for i in ("clean", "unused-import", "messy"))


def test_batch_results_equal_results_of_each_snippet_alone(
    mixed: dict[str, SnippetAnalysis],
) -> None:
    for snippet_id in ("unused-import", "syntax-error"):
        alone = analyze_snippets({snippet_id: MIXED_BATCH[snippet_id]})[snippet_id]
        assert alone == mixed[snippet_id]


def _pylint_duplicate_code_messages(directory: Path) -> list[str]:
    """Positive control: plain pylint on the same files *does* report duplicate-code."""
    stream = io.StringIO()
    files = sorted(str(p) for p in directory.glob("*.py"))
    args = [*files, "--rcfile=/dev/null", "--persistent=n", "--disable=all"]
    Run([*args, "--enable=duplicate-code"], reporter=JSON2Reporter(stream), exit=False)
    return [m["symbol"] for m in json.loads(stream.getvalue())["messages"]]


def test_no_duplicate_code_between_identical_snippets(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(LONG)
    (tmp_path / "b.py").write_text(LONG)
    assert "duplicate-code" in _pylint_duplicate_code_messages(tmp_path)

    results = analyze_snippets({"first": LONG, "second": LONG})
    assert results["first"] == results["second"]
    for result in results.values():
        assert not {"R0801", "R0401"} & codes(result, "pylint")


def test_cross_snippet_checks_stay_off_even_if_not_in_the_config() -> None:
    results = analyze_snippets({"a": LONG, "b": LONG}, AnalysisConfig(pylint_disable=[]))
    for result in results.values():
        assert "R0801" not in codes(result, "pylint")


def test_awkward_ids_are_never_used_as_paths() -> None:
    ids = ["../../etc/passwd", "a/b/c.py", "with space", "ünïcødé 😀", "", "s_000000.py"]
    snippets = {sid: UNUSED_IMPORT if i % 2 else CLEAN for i, sid in enumerate(ids)}
    results = analyze_snippets(snippets)
    assert list(results) == ids
    for i, sid in enumerate(ids):
        expected = {"F401"} if i % 2 else set()
        assert codes(results[sid], "ruff") == expected


def _no_tool_may_run(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("no tool may run for this batch")


def test_empty_mapping_starts_no_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "run_ruff", _no_tool_may_run)
    monkeypatch.setattr(batch_module, "run_pylint", _no_tool_may_run)
    assert analyze_snippets({}) == {}


def test_invalid_source_is_flagged_and_the_batch_goes_on() -> None:
    snippets: dict[str, str | bytes] = {
        "nul": "x = 1\x00\n",
        "lone-surrogate": 'x = "\udc80"\n',
        "bad-bytes": b'x = "\xff"\n',
        "good-bytes": UNUSED_IMPORT.encode(),
        "clean": CLEAN,
    }
    results = analyze_snippets(snippets)
    for sid in ("nul", "lone-surrogate", "bad-bytes"):
        (finding,) = results[sid].findings
        assert (finding.tool, finding.code) == ("iterkd", "invalid-source")
        assert results[sid].syntax_error is True
        assert results[sid].pylint_score == 0.0 and results[sid].ruff_score == 0.0
    assert "NUL" in results["nul"].findings[0].message
    assert codes(results["good-bytes"], "ruff") == {"F401"}
    assert results["clean"].findings == []


def test_only_invalid_sources_runs_no_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "run_ruff", _no_tool_may_run)
    monkeypatch.setattr(batch_module, "run_pylint", _no_tool_may_run)
    results = analyze_snippets({"nul": "\x00"})
    assert results["nul"].findings[0].code == "invalid-source"


def test_disabling_pylint() -> None:
    result = analyze_snippets({"u": UNUSED_IMPORT}, AnalysisConfig(pylint=False))["u"]
    assert result.pylint_score is None
    assert result.pylint_counts == {}
    assert codes(result, "pylint") == set()
    assert codes(result, "ruff") == {"F401"}


def test_disabling_ruff() -> None:
    result = analyze_snippets({"u": UNUSED_IMPORT}, AnalysisConfig(ruff=False))["u"]
    assert result.ruff_score is None
    assert result.ruff_counts == {}
    assert codes(result, "ruff") == set()
    assert codes(result, "pylint") == {"W0611"}


def test_unknown_pylint_message_name_fails_loudly() -> None:
    with pytest.raises(AnalysisError, match="no-such-check"):
        analyze_snippets({"c": CLEAN}, AnalysisConfig(ruff=False, pylint_disable=["no-such-check"]))


def test_unknown_ruff_selector_fails_loudly() -> None:
    with pytest.raises(AnalysisError, match="BOGUS"):
        analyze_snippets({"c": CLEAN}, AnalysisConfig(pylint=False, ruff_select=["BOGUS"]))


def test_analyzer_versions_names_every_tool() -> None:
    versions = analyzer_versions()
    assert set(versions) == {"ruff", "pylint", "astroid", "python"}
    assert versions["ruff"].startswith("0.17.")
    assert versions["pylint"].startswith("4.1.")


def test_magic_value_comparison_is_ignored_by_default_only() -> None:
    source = 'def is_seven(n: int) -> bool:\n    """Say if n is 7."""\n    return n == 7\n'
    default = analyze_snippets({"s": source}, AnalysisConfig(pylint=False))["s"]
    assert codes(default, "ruff") == set()
    opted_in = analyze_snippets({"s": source}, AnalysisConfig(pylint=False, ruff_ignore=[]))["s"]
    assert codes(opted_in, "ruff") == {"PLR2004"}

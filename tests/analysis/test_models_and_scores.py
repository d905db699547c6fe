"""Configuration validation and the score formulas, without running the tools."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from iterkd.analysis import AnalysisConfig, Finding
from iterkd.analysis.pylint_runner import (
    PylintModuleResult,
    message_to_finding,
    pylint_args,
    pylint_score,
)
from iterkd.analysis.ruff_runner import code_lines, parse_ruff_json, ruff_counts, ruff_score


def ruff_finding(code: str, category: str) -> Finding:
    return Finding(
        tool="ruff", code=code, symbol=None, category=category, line=1, column=1, message=""
    )


def test_config_rejects_unknown_keys_naming_them() -> None:
    with pytest.raises(ValidationError) as info:
        AnalysisConfig.model_validate({"ruff": True, "pylint_disabel": ["x"]})
    assert "pylint_disabel" in str(info.value)
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_config_defaults_disable_cross_snippet_checks() -> None:
    cfg = AnalysisConfig()
    assert {"duplicate-code", "cyclic-import"} <= set(cfg.pylint_disable)
    assert cfg.ruff and cfg.pylint
    assert cfg.timeout_s == 300.0
    assert "F" in cfg.ruff_select
    assert cfg.ruff_target_version == "py311"


def test_config_defaults_are_not_shared_between_instances() -> None:
    first = AnalysisConfig()
    first.ruff_select.append("I")
    assert "I" not in AnalysisConfig().ruff_select


@pytest.mark.parametrize(
    "bad", [{"python_version": "311"}, {"timeout_s": 0}, {"line_length": -1}, {"ruff": "maybe"}]
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AnalysisConfig.model_validate(bad)


def test_pylint_args_always_disable_cross_snippet_checks() -> None:
    args = pylint_args(AnalysisConfig(pylint_disable=["invalid-name"]))
    (disable,) = [a for a in args if a.startswith("--disable=")]
    assert set(disable.removeprefix("--disable=").split(",")) == {
        "duplicate-code",
        "cyclic-import",
        "invalid-name",
    }


def module(
    statements: int, findings: list[Finding] | None = None, **counts: int
) -> PylintModuleResult:
    result = PylintModuleResult(statements=statements, findings=findings or [])
    result.counts.update(counts)
    return result


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (module(10), 10.0),
        (module(10, warning=1), 9.0),
        (module(10, error=1), 5.0),
        (module(10, convention=2, refactor=1), 7.0),
        (module(4, error=3), 0.0),  # floored at 0
        (module(10, fatal=1), 0.0),
        (module(10, info=5), 10.0),  # info never counts
        (module(0), 10.0),  # nothing to judge: no penalty
        (module(0, convention=1), 0.0),  # weighed as one statement, like pylint's json2
    ],
)
def test_pylint_score_formula(result: PylintModuleResult, expected: float) -> None:
    assert pylint_score(result) == pytest.approx(expected)


def test_pylint_syntax_error_scores_zero() -> None:
    syntax = message_to_finding(
        {"messageId": "E0001", "symbol": "syntax-error", "type": "error", "line": 1, "column": 4}
    )
    assert syntax.column == 5  # made 1-based
    assert pylint_score(module(0, [syntax], error=1)) == 0.0


def test_ruff_score_is_monotone_and_ten_without_findings() -> None:
    source = "\n".join(f"x{i} = {i}" for i in range(10)) + "\n"
    scores = [ruff_score([ruff_finding("E", "E")] * n, source) for n in range(12)]
    assert scores[0] == 10.0
    assert scores[1] == pytest.approx(9.0)
    assert all(a >= b for a, b in itertools.pairwise(scores))
    assert scores[-1] == 0.0


def test_ruff_syntax_error_scores_zero() -> None:
    assert ruff_score([ruff_finding("invalid-syntax", "syntax")], "def f(:\n") == 0.0


def test_code_lines_skip_blank_and_comment_lines() -> None:
    assert code_lines("# c\n\nx = 1\n    # indented comment\ny = 2\n") == 2
    assert code_lines("") == 1


def test_parse_ruff_json_categories_and_syntax() -> None:
    stdout = """[
      {"code": "PLR0913", "filename": "/t/s_000001.py", "location": {"row": 3, "column": 5},
       "message": "Too many arguments", "name": "too-many-arguments"},
      {"code": null, "filename": "/t/s_000002.py", "location": {"row": 1, "column": 7},
       "message": "Expected )", "name": null},
      {"code": "C901", "filename": "/t/s_000001.py", "location": {"row": 3, "column": 5},
       "message": "too complex", "name": "complex-structure"}
    ]"""
    pairs = parse_ruff_json(stdout)
    assert [name for name, _ in pairs] == ["s_000001.py", "s_000002.py", "s_000001.py"]
    assert [f.category for _, f in pairs] == ["PLR", "syntax", "C"]
    assert pairs[1][1].code == "invalid-syntax"
    assert ruff_counts(f for name, f in pairs if name == "s_000001.py") == {"PLR": 1, "C": 1}

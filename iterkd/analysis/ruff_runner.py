"""Run ruff once over a directory of snippets and split its findings per file.

One `ruff check` process for the whole batch: ruff's start-up cost is paid once and it lints
the files in parallel itself. (Named `ruff_runner`, not `ruff`, so that it can never shadow
the installed `ruff` package.)
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from iterkd.analysis.models import AnalysisConfig, AnalysisError, Finding

# ruff 0.17 reports syntax errors with code "invalid-syntax"; older releases used null or E999.
_SYNTAX_CODES = frozenset({None, "invalid-syntax", "E999"})
SYNTAX_CATEGORY = "syntax"
_PREFIX = re.compile(r"[A-Z]+")


def find_ruff() -> Path:
    """Locate the ruff binary: the one installed next to the running interpreter first (the
    pinned version of this environment), else whatever `ruff` is on PATH."""
    sibling = shutil.which("ruff", path=str(Path(sys.executable).parent))
    found = sibling or shutil.which("ruff")
    if found is None:
        raise AnalysisError(
            f"ruff executable not found next to {sys.executable} nor on PATH; "
            "install the project's pinned ruff (`pip install 'ruff~=0.17.0'`) "
            "or disable it with AnalysisConfig(ruff=False)"
        )
    return Path(found)


@functools.cache
def ruff_version(binary: Path | None = None) -> str:
    """Version of the ruff that `find_ruff` picks, e.g. "0.17.6" (cached: it cannot change
    within a process that keeps its environment)."""
    exe = binary or find_ruff()
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().removeprefix("ruff ").strip()


def ruff_command(binary: Path, directory: Path, config: AnalysisConfig) -> list[str]:
    """The exact command line of a batch (also used by the benchmark, per snippet, so that
    both ways of running are configured identically)."""
    ignore = ["--ignore", ",".join(config.ruff_ignore)] if config.ruff_ignore else []
    return [
        str(binary),
        "check",
        "--output-format",
        "json",
        "--no-cache",
        # --isolated: no pyproject/ruff.toml of the user or of a parent directory may change
        # which rules run; everything that matters is given on this command line.
        "--isolated",
        # The temp dir could sit under a git checkout whose .gitignore matches it.
        "--no-respect-gitignore",
        "--select",
        ",".join(config.ruff_select),
        *ignore,
        "--target-version",
        config.ruff_target_version,
        "--line-length",
        str(config.line_length),
        # Findings are data here, not a failure; a non-zero exit then means ruff itself failed.
        "--exit-zero",
        str(directory),
    ]


def run_ruff(directory: Path, config: AnalysisConfig) -> dict[str, list[Finding]]:
    """Lint every file of `directory` in one ruff process; findings keyed by file name."""
    command = ruff_command(find_ruff(), directory, config)
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=config.timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AnalysisError(f"ruff did not finish within {config.timeout_s} s") from exc
    if proc.returncode != 0:
        # With --exit-zero only an invalid option/selector or a ruff crash gets here.
        raise AnalysisError(f"ruff failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return group_by_file(parse_ruff_json(proc.stdout))


def parse_ruff_json(stdout: str) -> list[tuple[str, Finding]]:
    """(file name, finding) pairs from ruff's `--output-format json` output."""
    try:
        items: list[dict[str, Any]] = json.loads(stdout or "[]")
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"ruff printed invalid JSON: {stdout[:200]!r}") from exc
    return [(Path(item["filename"]).name, _to_finding(item)) for item in items]


def _to_finding(item: Mapping[str, Any]) -> Finding:
    code = item.get("code")
    location = item.get("location") or {}
    if code in _SYNTAX_CODES:
        code, category = "invalid-syntax", SYNTAX_CATEGORY
    else:
        category = _category(code)
    return Finding(
        tool="ruff",
        code=code,
        symbol=item.get("name"),
        category=category,
        line=location.get("row"),
        column=location.get("column"),
        message=item.get("message", ""),
    )


def _category(code: str) -> str:
    """Rule-code prefix letters: "F401" -> "F", "PLR0913" -> "PLR", "C901" -> "C"."""
    match = _PREFIX.match(code)
    return match.group(0) if match else code


def group_by_file(pairs: Iterable[tuple[str, Finding]]) -> dict[str, list[Finding]]:
    """Findings keyed by file name, in ruff's order."""
    grouped: dict[str, list[Finding]] = {}
    for name, finding in pairs:
        grouped.setdefault(name, []).append(finding)
    return grouped


def ruff_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many ruff findings per category (rule-code prefix), e.g. {"F": 2, "SIM": 1}."""
    return dict(Counter(f.category for f in findings if f.tool == "ruff"))


def ruff_score(findings: Iterable[Finding], source: str) -> float:
    """A pylint-like 0..10 score from ruff's findings.

    score = max(0, 10 - 10 * n_findings / code_lines), code_lines being the lines that are
    neither blank nor only a comment (at least 1). Every finding weighs like one pylint
    warning per statement, so the two scores read alike; the score is monotone (one more
    finding never raises it) and is 10.0 without findings. A syntax error scores 0.0: ruff
    cannot judge the rest of a file it could not parse.
    """
    ruff_findings = [f for f in findings if f.tool == "ruff"]
    if any(f.category == SYNTAX_CATEGORY for f in ruff_findings):
        return 0.0
    return max(0.0, 10.0 - 10.0 * len(ruff_findings) / code_lines(source))


def code_lines(source: str) -> int:
    """Number of lines with code (not blank, not comment-only); at least 1 so that the score
    of an empty snippet is defined."""
    count = sum(1 for line in source.splitlines() if line.strip() and not _is_comment(line))
    return max(1, count)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")

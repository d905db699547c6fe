"""luacheck (Debian: lua-check) over a batch of Lua snippets in one process: the static view of
Lua answers, as ruff and pylint are Python's.

Each snippet gets its warning codes and a 0-10 score in pylint's manner:
`10 - 10 * (5 * errors + warnings) / statements` (floored at 0), with statements counted as
non-blank, non-comment lines. A snippet luacheck cannot parse (an E0xx code) scores 0 and is a
syntax error. The answer's own entry point is unused by design (the tests call it), so the
"unused function/variable" warning about that one name is not counted.

    results = luacheck_snippets({"q/teacher/0": (source, "sum_of_evens")})
    results["q/teacher/0"].score
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iterkd.analysis.models import AnalysisError

LUACHECK = "luacheck"
TIMEOUT_S = 300.0
_LINE = re.compile(r"^s(\d+)\.lua:\d+:\d+: \(([EW])(\d+)\) (.*)$")
_UNUSED = re.compile(r"^unused (?:function|variable) '([^']+)'$")


@dataclass
class LintResult:
    score: float
    codes: list[str] = field(default_factory=list)
    syntax_error: bool = False


def luacheck_available() -> bool:
    return shutil.which(LUACHECK) is not None


def luacheck_snippets(snippets: Mapping[str, tuple[str, str]]) -> dict[str, LintResult]:
    """id -> (Lua source, entry point name) in; id -> LintResult out, one luacheck run."""
    ids = list(snippets)
    if not ids:
        return {}
    with tempfile.TemporaryDirectory(prefix="iterkd-luacheck-") as directory:
        names = [f"s{i}.lua" for i in range(len(ids))]
        for name, snippet_id in zip(names, ids, strict=True):
            Path(directory, name).write_text(snippets[snippet_id][0], encoding="utf-8")
        output = _run(directory, names)
    findings: dict[int, list[tuple[str, str]]] = {i: [] for i in range(len(ids))}
    for line in output.splitlines():
        if match := _LINE.match(line):
            findings[int(match[1])].append((match[2] + match[3], match[4]))
    return {
        snippet_id: _result(snippets[snippet_id], findings[i]) for i, snippet_id in enumerate(ids)
    }


def _run(directory: str, names: list[str]) -> str:
    command = [LUACHECK, "--formatter", "plain", "--codes", "--no-color", "--no-config"]
    command += ["--std", "lua54", *names]
    try:
        done = subprocess.run(
            command, cwd=directory, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise AnalysisError("luacheck is not installed (Debian: lua-check)") from None
    except subprocess.TimeoutExpired:
        raise AnalysisError(f"luacheck took more than {TIMEOUT_S:.0f} s") from None
    if done.returncode > 2:  # 1: warnings, 2: errors (syntax); 3 and 4: luacheck itself failed
        raise AnalysisError(f"luacheck failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return done.stdout


def _result(snippet: tuple[str, str], findings: list[tuple[str, str]]) -> LintResult:
    source, entry = snippet
    counted = [code for code, message in findings if not _is_entry_unused(code, message, entry)]
    if any(code.startswith("E") for code in counted):
        return LintResult(score=0.0, codes=sorted(set(counted)), syntax_error=True)
    statements = sum(
        1 for line in source.splitlines() if line.strip() and not line.strip().startswith("--")
    )
    penalty = 10.0 * len(counted) / max(1, statements)
    return LintResult(score=round(max(0.0, 10.0 - penalty), 2), codes=sorted(set(counted)))


def _is_entry_unused(code: str, message: str, entry: str) -> bool:
    match = _UNUSED.match(message)
    return code == "W211" and match is not None and match[1] == entry

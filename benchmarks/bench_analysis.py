"""Benchmark: static analysis of N snippets batched (one tool run) vs one process per snippet.

Run:  .venv/bin/python benchmarks/bench_analysis.py [--n 200] [--pylint-subset 40] [--no-record]

For ruff and for pylint separately it times
  (a) `analyze_snippets` with only that tool on (one ruff process / one in-process pylint run);
  (b) one process per snippet: `ruff check FILE` / `python -m pylint FILE`, with the very same
      options (the library's own command/argument builders);
and checks that both ways find the same set of codes for every snippet. Per-snippet pylint is
slow (~1 s each), so it runs on the first --pylint-subset snippets only and its throughput is
reported per snippet; batched pylint is timed on the subset too, so the ratio can also be read
on identical input. Results are appended to benchmarks/RESULTS.md unless --no-record.
"""

from __future__ import annotations

import argparse
import ast
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from _recording import RESULTS, date, machine, record

from iterkd.analysis import AnalysisConfig, analyze_snippets, analyzer_versions
from iterkd.analysis.batch import safe_file_name
from iterkd.analysis.pylint_runner import message_to_finding, parse_pylint_json, pylint_args
from iterkd.analysis.ruff_runner import find_ruff, parse_ruff_json, ruff_command

HEADING = "## Static analysis: batched vs one process per snippet"
CodeSets = dict[str, frozenset[str]]

# ---------------------------------------------------------------------------------------------
# Snippets that look like model generations: mostly correct functions, some with typical
# defects, a few syntax errors. Each template takes (rng, index) so that every snippet differs.
# ---------------------------------------------------------------------------------------------


def clean_function(rng: random.Random, i: int) -> str:
    limit = rng.randint(2, 50)
    return f'''def count_primes_{i}(limit: int = {limit}) -> int:
    """Return how many primes are below limit."""
    count = 0
    for candidate in range(2, limit):
        if all(candidate % d for d in range(2, int(candidate**0.5) + 1)):
            count += 1
    return count
'''


def clean_search(rng: random.Random, i: int) -> str:
    return f'''def binary_search_{i}(items: list[int], target: int) -> int:
    """Return the index of target in sorted items, or -1."""
    low, high = 0, len(items) - 1
    while low <= high:
        middle = (low + high) // 2
        if items[middle] == target:
            return middle
        if items[middle] < target:
            low = middle + 1
        else:
            high = middle - 1
    return -1
'''


def unused_imports(rng: random.Random, i: int) -> str:
    extra = rng.choice(["import sys", "from typing import List", "import re, json"])
    return f'''import os
{extra}


def word_count_{i}(text: str) -> dict[str, int]:
    """Count the words of text."""
    counts: dict[str, int] = {{}}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts
'''


def bad_names(rng: random.Random, i: int) -> str:
    factor = rng.randint(2, 9)
    return f"""def CalcValue{i}(X, Y, unusedArg):
    Tmp = X * {factor} + Y
    if Tmp == None:
        return 0
    return Tmp
"""


def many_branches(rng: random.Random, i: int) -> str:
    n = rng.randint(8, 16)
    arms = "".join(f"    elif code == {k}:\n        return 'v{k}'\n" for k in range(1, n))
    return f"def lookup_{i}(code):\n    if code == 0:\n        return 'v0'\n{arms}    return None\n"


def mutable_default(rng: random.Random, i: int) -> str:
    return f"""def add_item_{i}(item, items=[]):
    try:
        items.append(int(item) + {rng.randint(0, 9)})
    except:
        pass
    return items
"""


def small_class(rng: random.Random, i: int) -> str:
    return f'''class Stack{i}:
    """A LIFO stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if len(self.items) == 0:
            raise IndexError("pop from empty stack")
        else:
            return self.items.pop()

    def size(self):
        return len(self.items)
'''


def script_style(rng: random.Random, i: int) -> str:
    n = rng.randint(3, 20)
    return f"""numbers = [x * x for x in range({n})]
total = 0
for n in numbers:
    if n % 2 == 0:
        total = total + n
print("Total of even squares for case {i} is: %d" % total)
print("Average: {{}}".format(total / len(numbers)))
"""


def sloppy_style(rng: random.Random, i: int) -> str:
    width = rng.randint(1, 5)
    trailing = "   "  # W291, kept out of this file's own source
    long_line = "    message = " + " + ".join(f'"part{k}"' for k in range(14))
    return f"""def format_row_{i}(values,sep=','):
    if values == None:
        return ''
{long_line}
    result=sep.join([str(v).rjust({width}) for v in values]){trailing}
    if result == True:
        return message
    return result
"""


def syntax_error(rng: random.Random, i: int) -> str:
    broken = rng.choice(
        [
            f"def solve_{i}(n)\n    return n + 1\n",
            f"def solve_{i}(values):\n    return sum(values\n",
            f"def solve_{i}(n):\n  if n:\n      return 1\n    return 0\n",
        ]
    )
    return broken


# (template, weight): mostly plausible code, ~4% syntax errors.
TEMPLATES: list[tuple[Callable[[random.Random, int], str], int]] = [
    (clean_function, 14),
    (clean_search, 14),
    (unused_imports, 12),
    (bad_names, 10),
    (many_branches, 10),
    (mutable_default, 10),
    (small_class, 10),
    (script_style, 8),
    (sloppy_style, 8),
    (syntax_error, 4),
]


def parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def make_snippets(n: int, seed: int) -> dict[str, str]:
    """n snippets keyed by ids shaped like a round's ("task-17/sample-3")."""
    rng = random.Random(seed)
    funcs, weights = zip(*TEMPLATES, strict=True)
    picks = rng.choices(funcs, weights=weights, k=n)
    return {f"task-{i // 4}/sample-{i % 4}": make(rng, i) for i, make in enumerate(picks)}


# ---------------------------------------------------------------------------------------------
# The two ways of running each tool.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall time of analysing `count` snippets, and the code sets found per snippet id."""

    count: int
    seconds: float
    codes: CodeSets

    @property
    def per_s(self) -> float:
        return self.count / self.seconds


def batched(snippets: Mapping[str, str], tool: str) -> Timing:
    """analyze_snippets with only `tool` enabled."""
    config = AnalysisConfig(ruff=tool == "ruff", pylint=tool == "pylint")
    start = time.perf_counter()
    results = analyze_snippets(snippets, config)
    seconds = time.perf_counter() - start
    codes = {
        sid: frozenset(f.code for f in r.findings if f.tool == tool) for sid, r in results.items()
    }
    return Timing(len(snippets), seconds, codes)


def per_snippet(snippets: Mapping[str, str], run_one: Callable[[Path], frozenset[str]]) -> Timing:
    """One process per snippet; each gets its own temp dir and the batch's file naming."""
    codes: CodeSets = {}
    start = time.perf_counter()
    for index, (sid, source) in enumerate(snippets.items()):
        with tempfile.TemporaryDirectory(prefix="iterkd-bench-") as tmp:
            path = Path(tmp) / safe_file_name(index)
            path.write_bytes(source.encode("utf-8"))
            codes[sid] = run_one(path)
    return Timing(len(snippets), time.perf_counter() - start, codes)


def ruff_one(path: Path) -> frozenset[str]:
    """`ruff check FILE` with the batch's exact options."""
    command = ruff_command(find_ruff(), path, AnalysisConfig())
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    return frozenset(finding.code for _, finding in parse_ruff_json(proc.stdout))


def pylint_one(path: Path) -> frozenset[str]:
    """`python -m pylint FILE` with the batch's exact options, json2 output."""
    args = [*pylint_args(AnalysisConfig()), "--output-format=json2"]
    command = [sys.executable, "-m", "pylint", str(path), *args]
    # pylint's exit status encodes which message types it found: not an error here.
    proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=path.parent)
    return frozenset(message_to_finding(m).code for m in parse_pylint_json(proc.stdout))


def mismatches(a: CodeSets, b: CodeSets) -> list[str]:
    """Ids of the snippets measured both ways whose code sets differ, with the difference."""
    out = []
    for sid in sorted(a.keys() & b.keys()):
        if a[sid] != b[sid]:
            out.append(f"{sid}: batched-only {sorted(a[sid] - b[sid])}, ")
            out[-1] += f"per-snippet-only {sorted(b[sid] - a[sid])}"
    return out


# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolResult:
    tool: str
    batch_all: Timing
    batch_subset: Timing | None
    single: Timing
    diffs: list[str]

    def lines(self) -> list[str]:
        ratio = self.batch_all.per_s / self.single.per_s
        rows = [
            f"| {self.tool} | batched, {self.batch_all.count} snippets | "
            f"{self.batch_all.seconds:.2f} | {self.batch_all.per_s:.1f} | {ratio:.1f}x |",
        ]
        if self.batch_subset is not None:
            sub = self.batch_subset
            sub_ratio = sub.per_s / self.single.per_s
            rows.append(
                f"| {self.tool} | batched, first {sub.count} snippets | "
                f"{sub.seconds:.2f} | {sub.per_s:.1f} | {sub_ratio:.1f}x |"
            )
        rows.append(
            f"| {self.tool} | one process per snippet, {self.single.count} snippets | "
            f"{self.single.seconds:.2f} | {self.single.per_s:.1f} | 1.0x |"
        )
        return rows


def measure_ruff(snippets: Mapping[str, str]) -> ToolResult:
    batched({"warm-up": "x = 1\n"}, "ruff")
    batch_all = batched(snippets, "ruff")
    single = per_snippet(snippets, ruff_one)
    return ToolResult("ruff", batch_all, None, single, mismatches(batch_all.codes, single.codes))


def measure_pylint(snippets: Mapping[str, str], subset: int) -> ToolResult:
    first = dict(list(snippets.items())[:subset])
    batched({"warm-up": "x = 1\n"}, "pylint")
    batch_all = batched(snippets, "pylint")
    batch_subset = batched(first, "pylint")
    single = per_snippet(first, pylint_one)
    diffs = mismatches(batch_all.codes, single.codes)
    return ToolResult("pylint", batch_all, batch_subset, single, diffs)


def report(args: argparse.Namespace, results: Sequence[ToolResult], n_syntax: int) -> str:
    versions = analyzer_versions()
    lines = [
        HEADING,
        "",
        f"- Command: `{args.command}`",
        f"- Date: {date()}",
        f"- Machine: {machine()}",
        f"- Tools: ruff {versions['ruff']}, pylint {versions['pylint']}, "
        f"astroid {versions['astroid']}",
        f"- Input: {args.n} generated snippets (seed {args.seed}, {n_syntax} with syntax "
        f"errors); per-snippet pylint on the first {args.pylint_subset}",
        "",
        "| tool | mode | wall s | snippets/s | throughput vs per-snippet |",
        "|---|---|---:|---:|---:|",
    ]
    for result in results:
        lines += result.lines()
    lines.append("")
    for result in results:
        compared = len(result.single.codes)
        lines.append(
            f"- {result.tool}: findings (set of codes per snippet) batched vs per-snippet: "
            f"{len(result.diffs)} mismatches out of {compared} snippets compared"
        )
        lines += [f"  - {d}" for d in result.diffs[:10]]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of snippets")
    parser.add_argument(
        "--pylint-subset", type=int, default=40, help="snippets for per-snippet pylint"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.command = " ".join([".venv/bin/python", "benchmarks/bench_analysis.py", *argv])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    snippets = make_snippets(args.n, args.seed)
    n_syntax = sum(not parses(s) for s in snippets.values())
    results = [measure_ruff(snippets), measure_pylint(snippets, args.pylint_subset)]
    text = report(args, results, n_syntax)
    print(text)
    if not args.no_record:
        record(text, args.results)
        print(f"appended to {args.results}")
    return 0 if not any(r.diffs for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Programs/second of iterkd's executor vs a human-eval-style harness, on the same sample set, in
the same run; then the cost of each isolation layer. Appends the results to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_executor.py [--per-kind 168] [--timeouts 4] [--no-record]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from humaneval_style_baseline import run_baseline

from iterkd.execution import Executor, Program, SandboxConfig, Status, TestSuite

RESULTS = Path(__file__).with_name("RESULTS.md")
TIMEOUT_S = 3.0  # human-eval's default

# name, signature, correct body, wrong body, tests as (args, expected)
TASKS: list[tuple[str, str, str, str, list[tuple[str, str]]]] = [
    ("add", "a, b", "return a + b", "return a - b", [("1, 2", "3"), ("-1, 1", "0"), ("10, 5", "15")]),
    ("fib", "n", "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     "return n", [("0", "0"), ("1", "1"), ("10", "55"), ("20", "6765")]),
    ("is_prime", "n", "return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))",
     "return n % 2 == 1", [("2", "True"), ("9", "False"), ("97", "True"), ("1", "False")]),
    ("rev", "s", "return s[::-1]", "return s", [("'abc'", "'cba'"), ("''", "''"), ("'ab'", "'ba'")]),
    ("vowels", "s", "return sum(c in 'aeiou' for c in s.lower())", "return len(s)",
     [("'Hello'", "2"), ("'xyz'", "0"), ("'AEIOU'", "5")]),
    ("max_of", "xs", "return max(xs)", "return xs[0]", [("[1, 5, 3]", "5"), ("[-2, -1]", "-1"), ("[7]", "7")]),
    ("fact", "n", "r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r", "return n * (n - 1)",
     [("0", "1"), ("5", "120"), ("10", "3628800")]),
    ("gcd", "a, b", "while b:\n        a, b = b, a % b\n    return a", "return min(a, b)",
     [("12, 18", "6"), ("7, 5", "1"), ("9, 3", "3")]),
    ("palin", "s", "t = ''.join(c.lower() for c in s if c.isalnum())\n    return t == t[::-1]",
     "return s == s[::-1]", [("'A man, a plan, a canal: Panama'", "True"), ("'abc'", "False")]),
    ("flatten", "xs", "out = []\n    for x in xs:\n        out.extend(flatten(x) if isinstance(x, list) else [x])\n    return out",
     "return xs", [("[1, [2, [3]]]", "[1, 2, 3]"), ("[]", "[]"), ("[[1], 2]", "[1, 2]")]),
    ("uniq", "xs", "seen = set()\n    return [x for x in xs if not (x in seen or seen.add(x))]",
     "return sorted(set(xs))", [("[3, 1, 3, 2]", "[3, 1, 2]"), ("[]", "[]"), ("[1, 1]", "[1]")]),
    ("word_count", "s", "from collections import Counter\n    return dict(Counter(s.split()))",
     "return {w: 1 for w in s.split()}", [("'a b a'", "{'a': 2, 'b': 1}"), ("''", "{}")]),
    ("binsearch", "xs, t", "import bisect\n    i = bisect.bisect_left(xs, t)\n    return i if i < len(xs) and xs[i] == t else -1",
     "return xs.index(t) if t in xs else 0", [("[1, 3, 5], 3", "1"), ("[1, 3, 5], 4", "-1"), ("[], 1", "-1")]),
    ("caesar", "s, k", "return ''.join(chr((ord(c) - 97 + k) % 26 + 97) for c in s)",
     "return s", [("'abc', 1", "'bcd'"), ("'xyz', 3", "'abc'")]),
    ("transpose", "m", "return [list(r) for r in zip(*m)]", "return m",
     [("[[1, 2], [3, 4]]", "[[1, 3], [2, 4]]"), ("[[1, 2, 3]]", "[[1], [2], [3]]")]),
    ("digits", "n", "return sum(int(d) for d in str(abs(n)))", "return n % 10",
     [("123", "6"), ("-45", "9"), ("0", "0")]),
    ("pairs", "xs, t", "return sorted((a, b) for i, a in enumerate(xs) for b in xs[i + 1:] if a + b == t)",
     "return []", [("[1, 2, 3, 4], 5", "[(1, 4), (2, 3)]"), ("[1], 2", "[]")]),
    ("mean", "xs", "return sum(xs) / len(xs) if xs else 0.0", "return sum(xs)",
     [("[1, 2, 3]", "2.0"), ("[]", "0.0"), ("[5]", "5.0")]),
    ("rle", "s", "import itertools\n    return [(k, len(list(g))) for k, g in itertools.groupby(s)]",
     "return [(c, 1) for c in s]", [("'aab'", "[('a', 2), ('b', 1)]"), ("''", "[]")]),
    ("primes_below", "n", "return [p for p in range(2, n) if all(p % d for d in range(2, p))]",
     "return list(range(2, n))", [("10", "[2, 3, 5, 7]"), ("2", "[]")]),
    ("anagram", "a, b", "return sorted(a) == sorted(b)", "return len(a) == len(b)",
     [("'listen', 'silent'", "True"), ("'ab', 'cd'", "False")]),
    ("matrix_sum", "m", "return sum(map(sum, m))", "return len(m)", [("[[1, 2], [3, 4]]", "10"), ("[]", "0")]),
    ("title", "s", "return ' '.join(w.capitalize() for w in s.split())", "return s.upper()",
     [("'hello world'", "'Hello World'"), ("'a'", "'A'")]),
    ("heap_top", "xs, k", "import heapq\n    return heapq.nlargest(k, xs)", "return xs[:k]",
     [("[5, 1, 9, 3], 2", "[9, 5]"), ("[1], 1", "[1]")]),
]  # fmt: skip
ERRORS = ["return undefined_name", "return 1 / 0", "return [][1]", "raise ValueError('no')",
          "return int('x')", "return {}['k']"]  # fmt: skip
TIMEOUTS = ["while True:\n        pass", "import time\n    time.sleep(100)"]


def _program(name: str, sig: str, body: str, variant: int) -> str:
    return f"def {name}({sig}):\n    # variant {variant}\n    {body}\n"


def _check(name: str, tests: list[tuple[str, str]]) -> str:
    lines = [f"    assert candidate({args}) == {expected}" for args, expected in tests]
    return "def check(candidate):\n" + "\n".join(lines) + "\n"


def build_samples(per_kind: int, timeouts: int) -> list[tuple[str, str, str, bool]]:
    """(source, test code, entry point, expected to pass) for correct, wrong, erroring, timeout."""
    samples = []
    for i in range(per_kind):
        name, sig, good, bad, tests = TASKS[i % len(TASKS)]
        check = _check(name, tests)
        samples.append((_program(name, sig, good, i), check, name, True))
        samples.append((_program(name, sig, bad, i), check, name, False))
        samples.append((_program(name, sig, ERRORS[i % len(ERRORS)], i), check, name, False))
    for i in range(timeouts):
        name, sig, _, _, tests = TASKS[i % len(TASKS)]
        samples.append((_program(name, sig, TIMEOUTS[i % 2], i), _check(name, tests), name, False))
    random.Random(0).shuffle(samples)  # as in a round: slow programs anywhere, same order for both
    return samples


def run_iterkd(samples: list, config: SandboxConfig) -> tuple[float, list[bool], Executor]:
    programs = [
        Program(
            id=str(i), source=src, tests=TestSuite(form="humaneval", code=check, entry_point=entry)
        )
        for i, (src, check, entry, _) in enumerate(samples)
    ]
    with Executor(config) as executor:
        executor.run(programs[:2])  # start the workers outside the timed part
        start = time.perf_counter()
        verdicts = executor.run(programs)
        elapsed = time.perf_counter() - start
    return elapsed, [v.status is Status.PASSED for v in verdicts], executor


def run_humaneval_style(samples: list) -> tuple[float, list[bool]]:
    programs = [f"{src}\n{check}\ncheck({entry})\n" for src, check, entry, _ in samples]
    start = time.perf_counter()
    passed = run_baseline(programs, timeout=TIMEOUT_S, threads=4)
    return time.perf_counter() - start, passed


LAYERS = {
    "all layers (bubblewrap if installed)": {},
    "no bubblewrap": {"bubblewrap": "off"},
    "no bubblewrap, no uid drop": {"bubblewrap": "off", "drop_privileges": False},
    "no bubblewrap, no PID namespace": {"bubblewrap": "off", "pid_namespace": False},
    "no bubblewrap, no mount namespace": {"bubblewrap": "off", "mount_namespace": False},
    "no bubblewrap, no net namespace": {"bubblewrap": "off", "net_namespace": False},
    "no bubblewrap, no rlimits": {"bubblewrap": "off", "rlimits": False},
    "no isolation at all (fork only)": {
        "bubblewrap": "off", "drop_privileges": False, "pid_namespace": False,
        "mount_namespace": False, "net_namespace": False, "rlimits": False,
    },
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--per-kind", type=int, default=168, help="correct, wrong and erroring each"
    )
    parser.add_argument("--timeouts", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per isolation layer")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    samples = build_samples(args.per_kind, args.timeouts)
    expected = [s[3] for s in samples]
    base = {"timeout_s": TIMEOUT_S, "workers": args.workers}
    ours_s, ours, executor = run_iterkd(samples, SandboxConfig(**base))
    bl_s, baseline = run_humaneval_style(samples)
    n = len(samples)
    lines = [
        f"samples: {n} ({args.per_kind} correct, {args.per_kind} wrong, {args.per_kind} erroring, "
        f"{args.timeouts} timing out at {TIMEOUT_S} s); iterkd workers: {executor.n_workers}",
        f"iterkd executor (all isolation on): {ours_s:.2f} s, {n / ours_s:.1f} programs/s",
        f"human-eval-style harness:          {bl_s:.2f} s, {n / bl_s:.1f} programs/s",
        f"ratio iterkd / human-eval-style: {bl_s / ours_s:.2f}x",
        f"verdicts as expected: iterkd {sum(a == b for a, b in zip(ours, expected, strict=True))}/{n}, "
        f"human-eval-style {sum(a == b for a, b in zip(baseline, expected, strict=True))}/{n}",
        "",
        f"cost of each isolation layer (programs without timeouts, wall ms per program, median of {args.repeats}):",
    ]
    quick = [s for s in samples if "while True" not in s[0] and "sleep" not in s[0]]
    bl_quick_s, _ = run_humaneval_style(quick)
    lines.insert(
        -2,
        f"without the {args.timeouts} timing-out programs: human-eval-style "
        f"{bl_quick_s / len(quick) * 1000:.2f} ms/program ({len(quick) / bl_quick_s:.1f} programs/s)",
    )
    times: dict[str, list[float]] = {label: [] for label in LAYERS}
    for _ in range(args.repeats):  # interleaved, so drifts of the machine hit every layer alike
        for label, overrides in LAYERS.items():
            times[label].append(run_iterkd(quick, SandboxConfig(**base, **overrides))[0])
    for label in LAYERS:
        elapsed = statistics.median(times[label])
        lines.append(
            f"  {label:<40} {elapsed / len(quick) * 1000:6.2f} ms  ({len(quick) / elapsed:7.1f} programs/s)"
        )
    report = "\n".join(lines)
    print(report)
    if not args.no_record:
        record(report, " ".join(sys.argv[1:]))


def record(report: str, argv: str) -> None:
    machine = f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
    bwrap = shutil.which("bwrap")
    if bwrap:
        machine += (
            ", "
            + subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
        )
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    heading = "\n## Executor: iterkd vs human-eval-style harness"
    if heading in text:  # keep one, the latest: older runs are in git history
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + (text[end:] if end >= 0 else "\n")
    text = text.rstrip("\n") + "\n"
    text += (
        f"\n## Executor: iterkd vs human-eval-style harness ({when})\n\n"
        f"- command: `.venv/bin/python benchmarks/bench_executor.py {argv}`".rstrip()
        + "\n"
        f"- machine: {machine}, user {'root' if os.geteuid() == 0 else 'non-root'}\n\n"
        f"```\n{report}\n```\n"
    )
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()

"""Programs/second per target language through iterkd's sandbox, against the same programs run
by their bare interpreter (one `subprocess.run` each, no isolation) in the same run, with Python
through the sandbox as the reference. Appends the results to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_languages.py [--per-language 40] [--no-record]

Each language runs `--per-language` programs answering the bundled question `sum_of_evens`:
half correct, half wrong, all with the question's 5 tests translated (MultiPL-E style).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _recording import date, machine, record

from iterkd.execution import Executor, Program, SandboxConfig, Status
from iterkd.execution.languages import LANGUAGES
from iterkd.execution.runners import translated
from iterkd.questions import load_bundled

CORRECT = {
    "python": "def sum_of_evens(nums):\n    return sum(n for n in nums if n % 2 == 0)\n",
    "lua": "function sum_of_evens(nums)\n  local s = 0\n  for _, n in ipairs(nums) do\n"
    "    if n % 2 == 0 then s = s + n end\n  end\n  return s\nend\n",
    "racket": "#lang racket\n(define (sum_of_evens nums)\n  (for/sum ([n nums] #:when (even? n)) n))\n",
    "ocaml": "let sum_of_evens (nums : int list) : int =\n"
    "  List.fold_left (fun acc n -> if n mod 2 = 0 then acc + n else acc) 0 nums\n",
    "r": "sum_of_evens <- function(nums) {\n  sum(nums[nums %% 2 == 0])\n}\n",
}
WRONG = {
    "python": "def sum_of_evens(nums):\n    return sum(nums)\n",
    "lua": "function sum_of_evens(nums)\n  return #nums\nend\n",
    "racket": "#lang racket\n(define (sum_of_evens nums)\n  (length nums))\n",
    "ocaml": "let sum_of_evens (nums : int list) : int = List.length nums\n",
    "r": "sum_of_evens <- function(nums) {\n  length(nums)\n}\n",
}


def programs(language: str, count: int) -> list[Program]:
    question = next(q for q in load_bundled("seed") if q.entry_point == "sum_of_evens")
    sources = [CORRECT[language] if i % 2 == 0 else WRONG[language] for i in range(count)]
    return [
        Program(id=f"{language}-{i}", source=s, tests=question.tests, language=language)
        for i, s in enumerate(sources)
    ]


def sandboxed(batch: list[Program]) -> tuple[float, int]:
    """Wall seconds for the batch through one warm executor, and how many verdicts were right."""
    with Executor(SandboxConfig(timeout_s=20.0)) as executor:
        executor.run(batch[:2])  # warm the workers
        start = time.perf_counter()
        verdicts = executor.run(batch)
        seconds = time.perf_counter() - start
    right = sum((v.status is Status.PASSED) == (i % 2 == 0) for i, v in enumerate(verdicts))
    return seconds, right


def bare(batch: list[Program]) -> float:
    """Wall seconds to run the same jobs by the interpreter alone, one at a time per core."""
    spec = LANGUAGES[batch[0].language]
    jobs = [spec.job(str(p.source), translated(p.tests, p.language)) for p in batch]
    start = time.perf_counter()
    running: list[subprocess.Popen] = []
    for job in jobs:
        while len(running) >= (os.cpu_count() or 1):
            running.pop(0).wait()
        running.append(_start(job))
    for process in running:
        process.wait()
    return time.perf_counter() - start


def _start(job: dict) -> subprocess.Popen:
    """Write the job's files into a fresh directory and start its build (if any) and run as one
    shell command, so that a compiled language's builds also run one per core; fd 3 -> null."""
    directory = tempfile.mkdtemp(prefix="iterkd-bench-")
    for name, text in job["files"].items():
        Path(directory, name).write_text(text, encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 3)
    command = f"exec {shlex.join(job['argv'])}"
    if job.get("build"):
        command = f"{shlex.join(job['build'])} >/dev/null 2>&1 && {command}"
    return subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=directory, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, pass_fds=(3,),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=40)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    lines = [f"programs per language: {args.per_language} (half correct); workers: one per core"]
    python_rate = None
    for language in ["python", *sorted(LANGUAGES)]:
        if language != "python" and shutil.which(LANGUAGES[language].interpreter) is None:
            lines.append(f"{language:7s} skipped: `{LANGUAGES[language].interpreter}` missing")
            continue
        batch = programs(language, args.per_language)
        seconds, right = sandboxed(batch)
        rate = len(batch) / seconds
        python_rate = python_rate or rate
        line = (
            f"{language:7s} sandboxed {rate:7.1f} programs/s ({1000 * seconds / len(batch):6.1f} ms"
            f" each, verdicts right {right}/{len(batch)}, {rate / python_rate:.3f}x Python)"
        )
        if language != "python":
            bare_seconds = bare(batch)
            line += f"; bare interpreter {len(batch) / bare_seconds:6.1f}/s"
            line += f" -> sandbox/bare {bare_seconds / seconds:.2f}x"
        lines.append(line)
        print(line, flush=True)
    text = "\n".join(lines)
    if not args.no_record:
        command = "benchmarks/bench_languages.py " + " ".join(sys.argv[1:])
        record(
            f"## Target languages: programs/s through the sandbox ({date()})\n\n"
            f"- command: `.venv/bin/python {command.strip()}`\n- machine: {machine()}\n\n"
            f"```\n{text}\n```\n"
        )


if __name__ == "__main__":
    main()

"""R programs in the sandbox: real Rscript, translated tests, the same containment as Python.

Every program of this file runs in one batch through one executor (R starts in about 0.3 s, so
the batch is what keeps the file fast); the tests then read their verdicts from it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iterkd.execution import Executor, Program, ProgramVerdict, SandboxConfig, Status, TestSuite
from iterkd.execution.languages.prompts import localize_prompt
from iterkd.execution.languages.r import MIN_OPEN_FILES, R, canonical, check_value, literal
from iterkd.execution.languages.translation import translate_suite
from iterkd.execution.languages.types import Untranslatable
from iterkd.execution.values import decode_value
from iterkd.questions import load_bundled

if shutil.which("Rscript") is None:
    if os.environ.get("CI"):
        pytest.fail("Rscript is not installed: `make system-deps` installs it", pytrace=False)
    pytest.skip("Rscript is not installed (Debian: r-base-core)", allow_module_level=True)

QUESTIONS = {q.entry_point: q for q in load_bundled("seed") + load_bundled("heldout")}
# R refuses to start below MIN_OPEN_FILES (the default `open_files` is lower): the limit at its edge
CONFIG = SandboxConfig(timeout_s=5.0, file_size_mb=1, open_files=MIN_OPEN_FILES)
TRICKY = 'q"b\\n\nt\tc\x01é世😀\x7f'  # quote, backslash, newline, tab, control, non-ASCII

SUM_OF_EVENS = "sum_of_evens <- function(nums) {\n  sum(nums[nums %% 2 == 0])\n}\n"
SOLUTIONS = {  # correct R, written as a person would (R's gotchas included)
    "sum_of_evens": SUM_OF_EVENS,
    "initials": """initials <- function(full_name) {
  words <- strsplit(trimws(full_name), "[[:space:]]+")[[1]]
  words <- words[nchar(words) > 0]
  if (length(words) == 0) return("")  # paste0 would make "." of no word
  paste0(toupper(substr(words, 1, 1)), ".", collapse = "")
}
""",
    "chunk": """chunk <- function(items, size) {
  if (length(items) == 0) return(list())
  starts <- seq(1, length(items), by = size)
  lapply(starts, function(s) items[s:min(s + size - 1, length(items))])
}
""",
    "parse_pairs": """parse_pairs <- function(text) {
  out <- list()
  for (part in strsplit(text, ";", fixed = TRUE)[[1]]) {
    if (!grepl("=", part, fixed = TRUE)) next
    out[[trimws(sub("=.*$", "", part))]] <- trimws(sub("^[^=]*=", "", part))
  }
  out
}
""",
    "merge_counts": """merge_counts <- function(a, b) {
  out <- a
  for (k in names(b)) {
    out[[k]] <- if (is.null(out[[k]])) b[[k]] else out[[k]] + b[[k]]
  }
  out[vapply(out, function(v) v != 0, logical(1))]
}
""",
    "first_repeated": """first_repeated <- function(items) {
  seen <- c()
  for (x in items) {
    if (x %in% seen) return(x)
    seen <- c(seen, x)
  }
  NULL
}
""",
    "rotate_clockwise": """rotate_clockwise <- function(matrix) {
  if (length(matrix) == 0) return(list())
  m <- do.call(rbind, matrix)
  t(m[nrow(m):1, , drop = FALSE])  # a matrix: the harness sends its rows
}
""",
    "mean_or_zero": "mean_or_zero <- function(nums) if (length(nums) == 0) 0 else mean(nums)\n",
}
WRONG = {  # (question, source, what the failure message must name)
    "wrong-sum": ("sum_of_evens", "sum_of_evens <- function(nums) sum(nums)", "expected 6, got 10"),
    "wrong-chunk": (
        "chunk",
        "chunk <- function(items, size) items",
        "expected [[1, 2], [3, 4], 5], got [1, 2, 3, 4, 5]",
    ),
    "wrong-pairs": (
        "parse_pairs",
        "parse_pairs <- function(text) list(a = '1', b = ' two')",
        "expected {'a': '1', 'b': 'two'}, got {'a': '1', 'b': ' two'}",
    ),
    "wrong-none": ("first_repeated", "first_repeated <- function(items) -1", "expected 1, got -1"),
}
ERRORS = {  # (source, exception type, message part)
    "syntax": ("sum_of_evens <- function(nums { 1 }", "SyntaxError", "unexpected '{'"),
    "missing": ("other <- function(nums) 0", "NameError", "'sum_of_evens' is not defined"),
    "stop": ("sum_of_evens <- function(nums) stop('boom')", "RError", "boom"),
    "stop_at_load": ("stop('at load')\n" + SUM_OF_EVENS, "RError", "at load"),
    "library_missing": ("library(jsonlite)\n" + SUM_OF_EVENS, "RError", "jsonlite"),
}
# R values and the Python literal each must equal, once both are canonical
SHAPES = {
    "c(1, 2)": "[1, 2]",
    "list(1, 2)": "[1, 2]",
    "list(1, list(2, c(3, 4)))": "[1, [2, [3, 4]]]",
    "list(a = 1, b = 'x')": "{'a': 1, 'b': 'x'}",
    "c(a = 1, b = 2)": "{'a': 1, 'b': 2}",
    "list(`my key` = c(1, 2))": "{'my key': [1, 2]}",
    "c()": "[]",
    "list()": "{}",
    "character(0)": "[]",
    "5L": "[5]",
    "factor(c('x', 'y', 'x'))": "['x', 'y', 'x']",
    "matrix(1:4, 2, byrow = TRUE)": "[[1, 2], [3, 4]]",
    "c(Inf, -Inf)": "[1e999, -1e999]",
    "0.1 + 0.2": "0.30000000000000004",
    "2^53": "9007199254740992",
    "c(TRUE, FALSE)": "[True, False]",
    "NA": "None",
    "'h\\u00e9llo \\u4e16'": "'héllo 世'",
    "'raw UTF-8 in the source: é世😀'": "'raw UTF-8 in the source: é世😀'",
}
# Python values (as literals) that must reach R as R literals and come back equal
ROUND_TRIP = [
    "[1, 2.5, -3]",
    "['a', 'b']",
    "[True, False]",
    "[True, 1]",
    "[[1, 2], [3]]",
    "[[], [1]]",
    "(1, 'a')",
    "{'a': 1, 'my key': [1, 2], 'if': {'x': 'y'}}",
    repr(TRICKY),
    "1e999",
    "-0.0",
    "9007199254740992",
]


def program(name: str, source: str, entry: str = "sum_of_evens") -> Program:
    return Program(id=name, source=source, tests=QUESTIONS[entry].tests, language="r")


def shapes(name: str, cases: dict[str, str]) -> Program:
    """`f(i)` returns the i-th R value; each is tested against its Python literal."""
    branches = ",\n".join(f"    {r_value}" for r_value in cases)
    source = f"f <- function(i) switch(i,\n{branches}\n)\n"
    asserts = [f"assert f({i}) == {py}" for i, py in enumerate(cases.values(), start=1)]
    tests = TestSuite(form="asserts", asserts=asserts, entry_point="f")
    return Program(id=name, source=source, tests=tests, language="r")


def echo(name: str, python_literals: list[str]) -> Program:
    """The identity, called on each value: its R literal must come back as the same value."""
    asserts = [f"assert echo({v}) == {v}" for v in python_literals]
    tests = TestSuite(form="asserts", asserts=asserts, entry_point="echo")
    return Program(id=name, source="echo <- function(x) x\n", tests=tests, language="r")


def hostile_programs(outside: Path) -> dict[str, str]:
    return {
        "loop": "sum_of_evens <- function(nums) repeat {}",
        "fork_bomb": (  # dash, R's /bin/sh, takes no `:` as a function name
            "sum_of_evens <- function(nums) repeat try(system('b(){ b|b& }; b', "
            "ignore.stdout = TRUE, ignore.stderr = TRUE), silent = TRUE)"
        ),
        "memory": "sum_of_evens <- function(nums) length(numeric(1e12))",
        "write_outside": f"writeLines('escaped', '{outside}')\n" + SUM_OF_EVENS,
        "big_file": "writeBin(raw(2e6), 'big.bin')\n" + SUM_OF_EVENS,
        "forge_at_load": """out <- file("/dev/fd/3", "w", raw = TRUE)
for (i in 0:4) writeLines(sprintf('{"case":%d,"status":"value","value":6}', i), out)
writeLines('{"event":"done"}', out)
flush(out)
quit(save = "no")
""",
        "forge_in_call": """sum_of_evens <- function(nums) {
  out <- file("/dev/fd/3", "w", raw = TRUE)
  for (i in 0:4) writeLines(sprintf('{"case":%d,"status":"value","value":%d}', i,
                                    c(6, 0, 0, 6, 0)[i + 1]), out)
  flush(out)
  -1
}
""",
        "hijack_globals": """for (name in c("writeLines", "cat", "sprintf", "paste0", "flush", "tryCatch")) {
  assign(name, function(...) "6", envir = globalenv())
}
sum_of_evens <- function(nums) -1
""",
        "quit_in_call": "sum_of_evens <- function(nums) quit(save = 'no', status = 0)",
    }


@dataclass
class Batch:
    verdicts: dict[str, ProgramVerdict]
    outside: Path
    after: ProgramVerdict
    leftover_processes: list[str]


def _processes_of(uids: range) -> list[str]:
    """Processes still running as a sandbox uid (a fork bomb's survivors)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        uid = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "")
        if uid.isdigit() and int(uid) in uids:
            found.append(entry.name)
    return found


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    with Executor(CONFIG) as ex:
        yield ex


@pytest.fixture(scope="module")
def batch(executor: Executor, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    outside_dir = tmp_path_factory.mktemp("outside")
    outside_dir.chmod(0o777)  # world-writable: only the sandbox's mounts keep programs out
    outside = outside_dir / "escaped.txt"
    programs = [program(f"good-{name}", src, name) for name, src in SOLUTIONS.items()]
    programs += [program(name, src, entry) for name, (entry, src, _) in WRONG.items()]
    programs += [program(name, src) for name, (src, _, _) in ERRORS.items()]
    programs += [shapes("shapes", SHAPES)]
    programs += [echo("round_trip", ROUND_TRIP)]
    # last: the CPU-burning ones (loop, fork bomb) would otherwise slow every R start beside them
    programs += [program(name, src) for name, src in hostile_programs(outside).items()]
    verdicts = {v.program_id: v for v in executor.run(programs)}
    leftovers = _processes_of(executor.sandbox_uids)
    after = executor.run([program("after", SUM_OF_EVENS)])[0]  # the pool still judges honestly
    return Batch(verdicts, outside, after, leftovers)


# ---------------------------------------------------------------- literals and canonical form
def test_literals_are_multipl_e_style_r() -> None:
    assert literal([1, 2, 3]) == "c(1, 2, 3)" and literal(["a", "b"]) == 'c("a", "b")'
    assert literal([True, False]) == "c(TRUE, FALSE)" and literal([1, 2.5]) == "c(1, 2.5)"
    assert literal([True, 1]) == "list(TRUE, 1)"  # c() would coerce TRUE to 1
    assert literal([[1, 2], [3]]) == "list(c(1, 2), c(3))"
    assert literal([]) == "c()" and literal({}) == "list()" and literal(None) == "NULL"
    assert literal((1, "a")) == 'list(1, "a")'
    named = literal({"a": 1, "my key": [1, 2], "if": 0})  # non-syntactic names are quoted
    assert named == 'list(a = 1, "my key" = c(1, 2), "if" = 0)'
    assert literal([float("inf"), float("-inf"), float("nan")]) == "c(Inf, -Inf, NaN)"
    assert literal(TRICKY) == '"q\\"b\\\\n\\nt\\tc\\u0001é世😀\\u007f"'
    assert R.call("candidate", ["1", "c()"]) == "candidate(1, c())"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, None], "None inside"),
        ({1: "a"}, "non-string keys"),
        ({"": 1}, "empty dict key"),
        (2**53 + 1, "beyond 2**53"),
        (["a\x00b"], "NUL"),
    ],
)
def test_values_r_cannot_hold_are_untranslatable(value: object, reason: str) -> None:
    with pytest.raises(Untranslatable, match=re.escape(reason)):
        check_value(value)


def test_values_r_can_hold_are_accepted() -> None:
    for value in (None, -(2**53), {"a": [1, 2]}, [[], {"k": "é"}], (1.5, "x")):
        check_value(value)


def test_canonical_makes_equal_what_r_cannot_tell_apart() -> None:
    assert canonical((1, 2)) == [1, 2] and canonical([5]) == 5 and canonical([[5]]) == 5
    assert canonical([[1, 2]]) == [[1, 2]]  # list(c(1, 2)) is not c(1, 2)
    assert canonical([]) is None and canonical({}) is None and canonical(()) is None
    assert canonical({"a": [1], "b": [], "c": (1, 2)}) == {"a": 1, "b": None, "c": [1, 2]}
    assert canonical([[], [1]]) == [None, 1] and canonical([{"a": 1}]) == [{"a": 1}]
    # c(1, 2) and list(1, 2) are the same JSON list; c(a = 1) and list(a = 1) the same dict
    assert canonical(decode_value([1, 2])) == canonical([1, 2])
    assert canonical(decode_value({"$dict": [["a", 1]]})) == canonical({"a": [1]})


# ---------------------------------------------------------------- translation and prompts
def test_every_bundled_question_translates() -> None:
    skipped = {}
    for entry, question in QUESTIONS.items():
        suite = translate_suite(question.tests, question.entry_point, R)
        assert suite.cases, entry
        skipped.update({(entry, s.index): s.reason for s in suite.skipped})
    # only int-keyed dicts are skipped: the names of an R list are strings
    assert {entry for entry, _ in skipped} == {"group_by_length", "invert_dict"}
    assert set(skipped.values()) == {
        "a dict with non-string keys: the names of an R list are strings"
    }


def test_prompt_and_native_tests_are_multipl_e_style() -> None:
    question = QUESTIONS["sum_of_evens"]
    suite = translate_suite(question.tests, question.entry_point, R)
    prompt = localize_prompt(question.prompt, suite, R)
    assert prompt.startswith("# Return the sum of the even numbers in nums")
    assert "# >>> sum_of_evens(c(1, 2, 3, 4))\n# 6\n" in prompt
    assert prompt.endswith("\nsum_of_evens <- function(nums) {\n")
    tests = R.render_tests(suite)
    assert tests.startswith("test_humaneval <- function() {\ncandidate <- sum_of_evens\n")
    assert "    if(!identical(candidate(c(1, 2, 3, 4)), 6)){quit('no', 1)}\n" in tests
    assert "    if(!identical(candidate(c()), 0)){quit('no', 1)}\n" in tests
    assert tests.endswith("}\ntest_humaneval()\n")


def test_non_equality_tests_stay_comments_in_native_tests() -> None:
    tests = TestSuite(form="asserts", asserts=["assert f(1) == 2", "assert f(2) > 1"])
    suite = translate_suite(tests, "f", R)
    assert "    # checked as in Python: assert f(2) > 1\n" in R.render_tests(suite)


def test_non_syntactic_names_are_quoted_in_prompts() -> None:
    tests = TestSuite(form="asserts", asserts=["assert _f(1, 2) == 3"], entry_point="_f")
    suite = translate_suite(tests, "_f", R)
    prompt = localize_prompt("def _f(_a, b):\n    '''Add.'''\n", suite, R)
    assert prompt == "# Add.\n`_f` <- function(`_a`, b) {\n"


# ---------------------------------------------------------------- programs in the sandbox
def test_correct_solutions_pass(batch: Batch) -> None:
    for name in SOLUTIONS:
        verdict = batch.verdicts[f"good-{name}"]
        assert verdict.status is Status.PASSED, (name, verdict.message, verdict.output[:500])
        assert verdict.language == "r"


def test_wrong_solutions_fail_naming_the_expected_value(batch: Batch) -> None:
    for name, (_, _, message) in WRONG.items():
        verdict = batch.verdicts[name]
        assert verdict.status is Status.FAILED, (name, verdict.message)
        assert message in verdict.message, (name, verdict.message)


def test_errors_are_the_programs_own(batch: Batch) -> None:
    for name, (_, exception, message) in ERRORS.items():
        verdict = batch.verdicts[name]
        assert verdict.status is Status.ERROR, (name, verdict.message, verdict.output[:500])
        assert verdict.exception_type == exception, (name, verdict.exception_type)
        assert message in verdict.message, (name, verdict.message)


def test_r_values_arrive_in_their_python_form(batch: Batch) -> None:
    verdict = batch.verdicts["shapes"]
    failed = [(t.source, t.message) for t in verdict.tests if t.status != "passed"]
    assert failed == [] and verdict.status is Status.PASSED, (failed, verdict.output[:500])
    assert verdict.tests_passed == len(SHAPES)


def test_python_values_round_trip_through_r_literals(batch: Batch) -> None:
    verdict = batch.verdicts["round_trip"]
    assert verdict.status is Status.PASSED, (verdict.message, verdict.output[:500])
    assert verdict.tests_passed == len(ROUND_TRIP)


def test_hostile_programs_get_the_right_verdict(batch: Batch) -> None:
    v = batch.verdicts
    assert v["loop"].status is Status.TIMEOUT
    assert v["fork_bomb"].status is Status.TIMEOUT
    assert v["memory"].status is Status.MEMORY and v["memory"].exception_type == "MemoryError"
    assert v["write_outside"].status is Status.ERROR and not batch.outside.exists()
    assert "cannot open the connection" in v["write_outside"].message
    assert v["big_file"].status is Status.OUTPUT_LIMIT and v["big_file"].signal == "SIGXFSZ"
    assert v["quit_in_call"].status is Status.CRASHED


def test_forged_records_and_hijacked_functions_do_not_pass(batch: Batch) -> None:
    v = batch.verdicts
    assert v["forge_at_load"].status is Status.CRASHED  # records before `loaded` are forged
    assert v["forge_in_call"].status is Status.CRASHED  # two results for a test
    assert "two results for test" in v["forge_in_call"].message
    assert v["hijack_globals"].status is Status.FAILED
    assert "expected 6, got -1" in v["hijack_globals"].message


def test_nothing_is_left_running_and_the_pool_still_works(batch: Batch) -> None:
    assert batch.leftover_processes == []
    assert batch.after.status is Status.PASSED, batch.after.message

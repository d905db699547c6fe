"""Racket as a target language: literals, canonical values, translation, prompts, and programs run
for real in the sandbox (correct, wrong, broken and hostile ones).

Racket starts slowly (about a second of CPU per program with `#lang racket`), so every sandboxed
program of this file runs in one batch through one executor (the `batch` fixture); the tests then
read their verdicts. Only the program that must run after the batch (the supervisor survived the
fork bomb) is a second call.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from iterkd.execution import (
    Executor,
    Program,
    ProgramVerdict,
    SandboxConfig,
    Status,
    TestStatus,
    TestSuite,
)
from iterkd.execution.languages import LANGUAGES
from iterkd.execution.languages.prompts import localize_prompt
from iterkd.execution.languages.racket import RACKET, canonical, check_value, literal
from iterkd.execution.languages.translation import translate_suite
from iterkd.execution.languages.types import Untranslatable
from iterkd.questions import Question, load_bundled

if shutil.which("racket") is None:
    if os.environ.get("CI"):
        pytest.fail("racket is not installed (Debian: racket); CI must run these tests")
    pytest.skip("racket is not installed (Debian: racket)", allow_module_level=True)

TIMEOUT_S = 10.0
QUESTIONS: dict[str, Question] = {q.id: q for s in ("seed", "heldout") for q in load_bundled(s)}

# ---------------------------------------------------------------- correct and wrong solutions
CORRECT = {
    "seed/017": """#lang racket
;; group_by_length: list of strings -> hash of int -> list of strings
(define (group_by_length words)
  (for/fold ([groups (hash)]) ([w (in-list words)])
    (hash-update groups (string-length w) (lambda (ws) (append ws (list w))) '())))
""",
    "seed/012": """#lang racket
;; first_repeated: #f stands for None, as in MultiPL-E
(define (first_repeated items)
  (let loop ([xs items] [seen (set)])
    (cond [(null? xs) #f]
          [(set-member? seen (car xs)) (car xs)]
          [else (loop (cdr xs) (set-add seen (car xs)))])))
""",
    "seed/019": """#lang racket
(define (covered_length intervals)
  (define sorted (sort intervals < #:key first))
  (let loop ([xs sorted] [total 0] [reach #f])
    (cond
      [(null? xs) total]
      [else
       (define start (if reach (max (first (car xs)) reach) (first (car xs))))
       (define end (second (car xs)))
       (if (> end start)
           (loop (cdr xs) (+ total (- end start)) end)
           (loop (cdr xs) total reach))])))
""",
    # no #lang line: the harness reads it as `#lang racket`
    "seed/003": """(define (initials full_name)
  (apply string-append
         (for/list ([w (string-split full_name)])
           (string (char-upcase (string-ref w 0)) #\\.))))
""",
    "seed/031": """#lang racket
(define (merge_counts a b)
  (define merged
    (for/fold ([m a]) ([(k v) (in-hash b)])
      (hash-update m k (lambda (x) (+ x v)) 0)))
  (for/hash ([(k v) (in-hash merged)] #:unless (zero? v))
    (values k v)))
""",
    # exact rationals: (/ 10 4) is 5/2, reported as 2.5
    "heldout/002": """#lang racket/base
(define (mean_or_zero nums)
  (if (null? nums) 0.0 (/ (apply + nums) (length nums))))
""",
    # defines `flatten`, a racket builtin, and names the test harness itself uses
    "seed/023": """#lang racket
(define list vector)
(define (hash . xs) 0)
(define candidate 0)
(define entry "nothing")
(define cases '())
(define (flatten nested)
  (append-map (lambda (x) (if (pair? x) (flatten x) (if (null? x) '() (cons x '())))) nested))
""",
}
WRONG = {
    "seed/017": "#lang racket\n(define (group_by_length words) (hash 0 words))\n",
    "seed/012": "#lang racket\n(define (first_repeated items) #f)\n",
    "seed/003": "#lang racket\n(define (initials full_name) (string-upcase full_name))\n",
    "seed/031": "#lang racket\n(define (merge_counts a b) (hash))\n",
}
# the first assert of each wrong program, and what the message must name
WRONG_MESSAGES = {
    "seed/017": "expected {2: ['hi', 'to'], 3: ['cat', 'dog']}, got {0: ['hi', 'cat', 'to', 'dog']}",
    "seed/012": "expected 1, got False",
    "seed/003": "expected 'A.K.L.', got 'ADA KING LOVELACE'",
    "seed/031": "expected {'x': 1, 'z': 5}, got {}",
}
SUM_OF_EVENS = "seed/000"
GOOD_DEFINE = "(define (sum_of_evens nums) (apply + (filter even? nums)))\n"
GOOD_SUM = "#lang racket\n" + GOOD_DEFINE


def _wrap(body: str) -> str:
    return f"#lang racket\n(define (sum_of_evens nums)\n  {body})\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    source: str
    expected: Status
    exception: str | None = None
    signal: str | None = None


def hostile_programs(outside: Path) -> list[Hostile]:
    """Each with the exact status this runtime gives it."""
    return [
        Hostile(
            "syntax_error",
            "#lang racket\n(define (sum_of_evens nums)\n  (+ 1 2)\n",
            Status.ERROR,
            "SyntaxError",
        ),
        Hostile(
            "entry_missing",
            "#lang racket\n(define (sum_evens nums) 0)\n",
            Status.ERROR,
            "NameError",
        ),
        Hostile(
            "entry_not_a_procedure",
            "#lang racket\n(define sum_of_evens 6)\n",
            Status.ERROR,
            "NameError",
        ),
        Hostile(
            "runtime_error", _wrap("(car (filter string? nums))"), Status.ERROR, "exn:fail:contract"
        ),
        Hostile(
            "error_at_load",
            '#lang racket\n(error \'boom "at load")\n' + GOOD_DEFINE,
            Status.ERROR,
            "exn:fail",
        ),
        Hostile("raise_non_exception", _wrap("(raise 'oops)"), Status.ERROR, "RacketError"),
        Hostile("exit_in_call", _wrap("(exit 0)"), Status.ERROR, "SystemExit"),
        Hostile(
            "exit_at_load", "#lang racket\n(exit 0)\n" + GOOD_DEFINE, Status.ERROR, "SystemExit"
        ),
        Hostile(
            "kill_own_thread", _wrap("(kill-thread (current-thread))"), Status.ERROR, "RacketError"
        ),
        # the program's own custodian is not the one that carries the memory limit
        Hostile(
            "shutdown_own_custodian",
            _wrap("(custodian-shutdown-all (current-custodian))"),
            Status.ERROR,
            "RacketError",
        ),
        Hostile("infinite_loop", _wrap("(let loop () (loop))"), Status.TIMEOUT),
        # One allocation too large for the address space left raises exn:fail:out-of-memory. Memory
        # that grows (a list consed forever) hits the custodian limit after some 5-7 s of CPU, per
        # test: `memory` when one test does it, `timeout` first when several do. One allocation
        # that fits but leaves the collector no room (strings doubled by string-append) makes
        # Chez Scheme abort: `crashed`, SIGABRT. The last two depend on timing: not tested here.
        Hostile(
            "huge_vector",
            _wrap("(vector-length (make-vector 10000000000))"),
            Status.MEMORY,
            "MemoryError",
        ),
        # processes until RLIMIT_NPROC: racket's process creation fails, an error of the call
        Hostile(
            "process_bomb",
            _wrap('(let loop () (process "sleep 1000") (loop))'),
            Status.ERROR,
            "exn:fail",
        ),
        # a shell fork bomb left running in the background; the answer is wrong anyway
        Hostile(
            "shell_fork_bomb",
            '#lang racket\n(system "b() { b | b & }; b")\n(define (sum_of_evens nums) 0)\n',
            Status.FAILED,
        ),
        Hostile(
            "write_outside",
            f'#lang racket\n(with-output-to-file "{outside / "new.txt"}" (lambda () (display "x")))\n'
            + GOOD_DEFINE,
            Status.ERROR,
            "exn:fail:filesystem:errno",
        ),
        Hostile(
            "big_file",
            _wrap(
                '(with-output-to-file "big" (lambda () (for ([i 3000]) '
                "(write-bytes (make-bytes 1000 65)))))"
            ),
            Status.OUTPUT_LIMIT,
            signal="SIGXFSZ",
        ),
        Hostile(
            "infinite_output", _wrap('(let loop () (display "spam") (loop))'), Status.OUTPUT_LIMIT
        ),
        # forged records on fd 3: the right values for every test and a `done`, then a wrong answer
        Hostile(
            "forged_records",
            _wrap(
                '(define o (open-output-file "/dev/fd/3" #:exists \'append))\n'
                "  (for ([i 5] [v '(6 0 0 6 0)])\n"
                '    (fprintf o "{\\"case\\":~a,\\"status\\":\\"value\\",\\"value\\":~a}\\n" i v))\n'
                '  (fprintf o "{\\"event\\":\\"done\\"}\\n")\n  (flush-output o)\n  -1'
            ),
            Status.CRASHED,
        ),
        Hostile(
            "forged_done_at_load",
            '#lang racket\n(with-output-to-file "/dev/fd/3" #:exists \'append\n'
            '  (lambda () (displayln "{\\"event\\":\\"done\\"}")))\n' + GOOD_DEFINE,
            Status.CRASHED,
        ),
        Hostile(
            "fake_records_on_stdout",
            '#lang racket\n(displayln "{\\"case\\":0,\\"status\\":\\"value\\",\\"value\\":6}")\n'
            "(define (sum_of_evens nums) 6)\n",
            Status.FAILED,
        ),
        Hostile("returns_procedure", _wrap("sum_of_evens"), Status.FAILED),
    ]


# ---------------------------------------------------------------- values through the harness
ROUND_TRIP_VALUES: list[object] = [
    'quote " and backslash \\ and \\u0041',
    "\n\t\r" + "".join(chr(i) for i in range(32)) + "\x7f",
    "\x01A\x1fF",  # a hex digit right after an escape is not part of it
    "é ü 中文 🎉 \x85 \u2028 \u2029 \ufeff",  # line breaks to str.splitlines: escaped
    "",
    1e100,
    -0.0,
    1e999,
    -1e999,
    2**70,
    -(2**70),
    [1, [2, (3, None)], []],
    {"a": [1, 2], "b": {}},
    {(1, 2): "tuple key", (): "empty"},
    True,
    None,
]
# values a function builds itself (not literals): what each must decode to
BUILT_VALUES = {
    "(/ 5 2)": 2.5,
    "(vector 1 2)": [1, 2],
    "#\\x": "x",
    "'sym": "sym",
    "(void)": False,
    "(make-hash (list (cons 1 2)))": {1: 2},
}
BAD_VALUES = {
    "car": "returned a procedure",
    "(cons 1 2)": "returned an improper (or cyclic) list",
    "(mcons 1 2)": "returned a mpair",
    "(let ([v (make-vector 1)]) (vector-set! v 0 v) v)": "nested too deeply",
    "(build-list 2000000 values)": "too large",
    "(make-rectangular 1 2)": "returned a complex number",
}


def _python(value: object) -> str:
    """A Python literal for the value (repr writes inf, which is no literal)."""
    if type(value) is float and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)


def _assert_suite(entry: str, pairs: list[tuple[str, str]]) -> TestSuite:
    return TestSuite(
        form="asserts", asserts=[f"assert {entry}({a}) == {e}" for a, e in pairs], entry_point=entry
    )


def round_trip_program() -> Program:
    """`(pick i)` returns the i-th value of ROUND_TRIP_VALUES, written by `literal`."""
    literals = "\n    ".join(literal(v) for v in ROUND_TRIP_VALUES)
    source = f"#lang racket\n(define (pick i)\n  (list-ref (list\n    {literals}) i))\n"
    tests = _assert_suite("pick", [(str(i), _python(v)) for i, v in enumerate(ROUND_TRIP_VALUES)])
    return Program(id="round_trip", source=source, tests=tests, language="racket")


def built_values_program() -> Program:
    bodies = list(BUILT_VALUES)
    clauses = "\n    ".join(f"[({i}) {b}]" for i, b in enumerate(bodies))
    source = f"#lang racket\n(define (build i)\n  (case i\n    {clauses}))\n"
    pairs = [(str(i), repr(BUILT_VALUES[b])) for i, b in enumerate(bodies)]
    return Program(
        id="built", source=source, tests=_assert_suite("build", pairs), language="racket"
    )


def bad_values_program() -> Program:
    bodies = list(BAD_VALUES)
    clauses = "\n    ".join(f"[({i}) {b}]" for i, b in enumerate(bodies))
    source = f"#lang racket\n(define (bad i)\n  (case i\n    {clauses}))\n"
    tests = _assert_suite("bad", [(str(i), "0") for i in range(len(bodies))])
    return Program(id="bad_values", source=source, tests=tests, language="racket")


# ---------------------------------------------------------------- the batch
@dataclass
class Batch:
    verdicts: dict[str, ProgramVerdict]
    hostile: dict[str, Hostile]
    outside: Path
    after: ProgramVerdict


def _program(program_id: str, source: str, question_id: str) -> Program:
    question = QUESTIONS[question_id]
    return Program(id=program_id, source=source, tests=question.tests, language="racket")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    outside = tmp_path_factory.mktemp("outside")
    outside.chmod(0o777)  # world-writable: only the sandbox's mounts keep programs out
    hostile = hostile_programs(outside)
    programs = [_program(f"correct:{q}", s, q) for q, s in CORRECT.items()]
    programs += [_program(f"wrong:{q}", s, q) for q, s in WRONG.items()]
    programs += [_program(h.name, h.source, SUM_OF_EVENS) for h in hostile]
    programs += [round_trip_program(), built_values_program(), bad_values_program()]
    config = SandboxConfig(timeout_s=TIMEOUT_S, file_size_mb=1, output_limit_bytes=1 << 16)
    with Executor(config) as executor:
        verdicts = {v.program_id: v for v in executor.run(programs)}
        after = executor.run([_program("after", GOOD_SUM, SUM_OF_EVENS)])[0]
    return Batch(verdicts, {h.name: h for h in hostile}, outside, after)


def _describe(verdict: ProgramVerdict) -> tuple:
    return verdict.status, verdict.message[:300], verdict.output[:300]


# ---------------------------------------------------------------- literals and canonical values
def test_literals_are_multipl_e_racket() -> None:
    assert literal([1, (2, 3), []]) == "(list 1 (list 2 3) (list))"
    assert literal({"a": 1, "b": None}) == '(hash "a" 1 "b" #f)'
    assert literal({}) == "(hash)"
    assert [literal(v) for v in (True, False, None)] == ["#t", "#f", "#f"]
    assert [literal(v) for v in (-7, 2**80)] == ["-7", str(2**80)]
    assert [literal(v) for v in (1.5, 1e100, math.inf, -math.inf, math.nan)] == [
        "1.5",
        "1e+100",
        "+inf.0",
        "-inf.0",
        "+nan.0",
    ]


def test_string_literals_escape_what_the_reader_needs() -> None:
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert literal("x\ny\tz\r") == '"x\\ny\\tz\\r"'
    assert literal("\x00\x1b\x7f") == '"\\u0000\\u001B\\u007F"'
    assert literal("\x01A") == '"\\u0001A"'  # four digits: the A stays a character
    assert literal("é中🎉") == '"é中🎉"'


def test_canonical_makes_tuples_lists_and_none_false_at_any_depth() -> None:
    assert canonical((1, None, [(2, None)])) == [1, False, [[2, False]]]
    assert canonical({"k": (None,)}) == {"k": [False]}
    assert canonical({(1, None): 2, None: 3}) == {(1, False): 2, False: 3}
    assert canonical(None) is False
    assert canonical("s") == "s" and canonical(2.5) == 2.5


def test_values_racket_cannot_hold_are_refused() -> None:
    with pytest.raises(Untranslatable, match="surrogate"):
        check_value(["\ud800"])
    with pytest.raises(Untranslatable, match="one key"):
        check_value({None: 1, False: 2})
    with pytest.raises(Untranslatable, match="NaN"):
        check_value({math.nan: 1})
    check_value({"a": [None, (1, 2)], (1, 2): 2.5})  # fine


def test_racket_is_registered() -> None:
    assert LANGUAGES["racket"] is RACKET
    assert RACKET.comment == ";;" and RACKET.fences == ("racket", "rkt", "scheme")
    assert RACKET.call("candidate", ["1", "(list)"]) == "(candidate 1 (list))"
    assert RACKET.call("candidate", []) == "(candidate)"


# ---------------------------------------------------------------- translation, prompt, rackunit
@pytest.mark.parametrize("question_id", sorted(QUESTIONS))
def test_every_bundled_question_translates_whole(question_id: str) -> None:
    question = QUESTIONS[question_id]
    suite = translate_suite(question.tests, question.entry_point, RACKET)
    assert suite.skipped == ()
    assert len(suite.cases) == len(question.tests.asserts or [])


def test_prompt_is_multipl_e_style() -> None:
    question = QUESTIONS["seed/017"]
    suite = translate_suite(question.tests, question.entry_point, RACKET)
    prompt = localize_prompt(question.prompt, suite, RACKET)
    assert prompt == (
        "#lang racket\n\n"
        ";; Group words by length; each group keeps the original order.\n"
        ";;\n"
        ';; >>> (group_by_length (list "hi" "cat" "to" "dog"))\n'
        ';; (hash 2 (list "hi" "to") 3 (list "cat" "dog"))\n'
        "(define (group_by_length words)\n"
    )


def test_rackunit_file_is_multipl_e_style_and_passes_the_reference() -> None:
    question = QUESTIONS["seed/017"]
    suite = translate_suite(question.tests, question.entry_point, RACKET)
    tests = RACKET.render_tests(suite)
    lines = tests.splitlines()
    assert lines[:4] == [
        "(require rackunit)",
        "",
        "(define (test-humaneval)",
        "  (let ((candidate group_by_length))",
    ]
    assert (
        '    (check-equal? (candidate (list "hi" "cat" "to" "dog")) '
        '(hash 2 (list "hi" "to") 3 (list "cat" "dog")))' in lines
    )
    assert "    (check-equal? (candidate (list)) (hash))" in lines
    assert lines[-3:] == ["))", "", "(test-humaneval)"]
    # the file runs under racket itself (outside the sandbox) against a correct solution
    run = subprocess.run(
        ["racket", "-e", CORRECT["seed/017"].removeprefix("#lang racket\n") + tests],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (run.returncode, run.stderr) == (0, "")


def test_non_equality_asserts_become_comments_in_the_rackunit_file() -> None:
    tests = TestSuite(
        form="asserts",
        asserts=["assert f(1) == 2", "assert f(2) > 1", "assert abs(f(3) - 0.5) < 1e-9"],
        entry_point="f",
    )
    rendered = RACKET.render_tests(translate_suite(tests, "f", RACKET))
    assert "    (check-equal? (candidate 1) 2)" in rendered
    assert "    ;; checked as in Python: assert f(2) > 1" in rendered
    assert "    ;; checked as in Python: assert abs(f(3) - 0.5) < 1e-09" in rendered


# ---------------------------------------------------------------- programs in the sandbox
@pytest.mark.parametrize("question_id", sorted(CORRECT))
def test_correct_solution_passes(batch: Batch, question_id: str) -> None:
    verdict = batch.verdicts[f"correct:{question_id}"]
    assert verdict.status is Status.PASSED, _describe(verdict)
    assert verdict.language == "racket"
    assert verdict.tests_passed == verdict.tests_total == len(QUESTIONS[question_id].tests.asserts)


@pytest.mark.parametrize("question_id", sorted(WRONG))
def test_wrong_solution_fails_naming_the_expected_value(batch: Batch, question_id: str) -> None:
    verdict = batch.verdicts[f"wrong:{question_id}"]
    assert verdict.status is Status.FAILED, _describe(verdict)
    first = verdict.tests[0]  # the first assert fails, and the verdict says with what
    assert first.status is TestStatus.FAILED
    assert verdict.message == f"{first.source}: {WRONG_MESSAGES[question_id]}"


@pytest.mark.parametrize("name", [h.name for h in hostile_programs(Path("/x"))])
def test_broken_and_hostile_programs_get_their_status(batch: Batch, name: str) -> None:
    case, verdict = batch.hostile[name], batch.verdicts[name]
    assert verdict.status is case.expected, _describe(verdict)
    if case.exception:
        assert verdict.exception_type == case.exception, verdict.message
    if case.signal:
        assert verdict.signal == case.signal
    if case.expected is Status.TIMEOUT:
        assert verdict.wall_time_s is not None and verdict.wall_time_s >= TIMEOUT_S


def test_load_errors_carry_racket_s_message(batch: Batch) -> None:
    syntax = batch.verdicts["syntax_error"].message
    assert syntax.startswith("program: SyntaxError: ")
    assert "solution.rkt:2:0: read-syntax: expected a `)` to close `(`" in syntax
    assert batch.verdicts["entry_missing"].message == "entry point 'sum_of_evens' is not defined"
    assert "not a procedure" in batch.verdicts["entry_not_a_procedure"].message
    assert "boom: at load" in batch.verdicts["error_at_load"].message
    assert "car: contract violation" in batch.verdicts["runtime_error"].message


def test_nothing_is_written_outside_the_sandbox(batch: Batch) -> None:
    assert list(batch.outside.iterdir()) == []


def test_a_correct_program_passes_after_the_fork_bombs(batch: Batch) -> None:
    assert batch.after.status is Status.PASSED, _describe(batch.after)


def test_values_round_trip_through_the_harness(batch: Batch) -> None:
    verdict = batch.verdicts["round_trip"]
    assert verdict.status is Status.PASSED, [(t.source[:60], t.message) for t in verdict.tests]


def test_values_the_program_builds_are_reported_as_python_sees_them(batch: Batch) -> None:
    verdict = batch.verdicts["built"]
    assert verdict.status is Status.PASSED, [(t.source[:60], t.message) for t in verdict.tests]


def test_values_with_no_python_form_fail_the_test(batch: Batch) -> None:
    verdict = batch.verdicts["bad_values"]
    assert verdict.status is Status.FAILED
    messages = [t.message for t in verdict.tests]
    for message, expected in zip(messages, BAD_VALUES.values(), strict=True):
        assert expected in message, messages

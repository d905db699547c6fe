"""OCaml programs in the sandbox: real ocamlc/ocamlrun, typed translated tests, the same
containment as Python."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from iterkd.execution import Executor, Program, ProgramVerdict, SandboxConfig, Status, TestSuite
from iterkd.execution.languages import LANGUAGES, Untranslatable
from iterkd.execution.languages.ocaml import OCAML, comment, literal, ocaml_type
from iterkd.execution.languages.prompts import localize_prompt
from iterkd.execution.languages.spec import PromptParts, SkippedTest
from iterkd.execution.languages.translation import translate_suite
from iterkd.execution.languages.types import VType, type_of
from iterkd.questions import load_bundled

if shutil.which("ocamlc") is None:
    if os.environ.get("CI"):
        pytest.fail("ocamlc is not installed: `make system-deps` installs it", pytrace=False)
    pytest.skip("ocamlc is not installed (Debian: ocaml-nox)", allow_module_level=True)

ALL_QUESTIONS = load_bundled("seed") + load_bundled("heldout")
QUESTIONS = {q.entry_point: q for q in ALL_QUESTIONS}
INT, FLOAT, STR = VType("int"), VType("float"), VType("str")
SUM_OF_EVENS = """let sum_of_evens (nums : int list) : int =
  List.fold_left (fun acc n -> if n mod 2 = 0 then acc + n else acc) 0 nums
"""
SOLUTIONS = {
    "sum_of_evens": SUM_OF_EVENS,
    "first_repeated": """let first_repeated (items : int list) : int option =
  let rec go seen = function
    | [] -> None
    | x :: rest -> if List.mem x seen then Some x else go (x :: seen) rest
  in
  go [] items
""",
    "group_by_length": """let group_by_length (words : string list) : (int * string list) list =
  List.fold_left
    (fun acc w ->
      let n = String.length w in
      match List.assoc_opt n acc with
      | Some ws -> (n, ws @ [ w ]) :: List.remove_assoc n acc
      | None -> acc @ [ (n, [ w ]) ])
    [] words
""",
    "covered_length": """let covered_length (intervals : (int * int) list) : int =
  let step (total, reach) (s, e) =
    let s = max s reach in
    if e > s then (total + e - s, e) else (total, reach)
  in
  fst (List.fold_left step (0, min_int) (List.sort compare intervals))
""",
    "mean_or_zero": """let mean_or_zero (nums : float list) : float =
  match nums with
  | [] -> 0.
  | _ -> List.fold_left ( +. ) 0. nums /. float_of_int (List.length nums)
""",
    "merge_counts": """let merge_counts (a : (string * int) list) (b : (string * int) list) =
  let add acc (k, v) =
    match List.assoc_opt k acc with
    | Some w -> (k, v + w) :: List.remove_assoc k acc
    | None -> (k, v) :: acc
  in
  List.filter (fun (_, v) -> v <> 0) (List.fold_left add (List.fold_left add [] a) b)
""",
}


def program(name: str, source: str, entry: str = "sum_of_evens") -> Program:
    return Program(id=name, source=source, tests=QUESTIONS[entry].tests, language="ocaml")


def echo(name: str, value: str) -> Program:
    """`let f x = x` under `assert f(value) == value`: the literal goes in, the encoder out."""
    tests = TestSuite(form="asserts", asserts=[f"assert f({value}) == {value}"])
    return Program(id=name, source="let f x = x\n", tests=tests, language="ocaml")


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    config = SandboxConfig(timeout_s=5.0, file_size_mb=1, memory_mb=256)
    with Executor(config) as ex:
        yield ex


def processes_of(uids: range) -> list[str]:
    """Live processes owned by the sandbox's uids."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(x for x in status.read_text().splitlines() if x.startswith("Uid:"))
        except (OSError, StopIteration):
            continue  # the process ended while we looked
        if int(uid_line.split()[1]) in uids:
            found.append(status.parent.name)
    return found


def run(executor: Executor, *programs: Program) -> dict[str, ProgramVerdict]:
    return {v.program_id: v for v in executor.run(list(programs))}


# ---------------------------------------------------------------- types and literals
def test_literals_are_ocaml_syntax_of_the_unified_type() -> None:
    assert LANGUAGES["ocaml"] is OCAML
    assert literal(-3, INT) == "(-3)" and literal(3, FLOAT) == "3.0"
    assert literal(-0.5, FLOAT) == "(-0.5)" and literal(float("-inf"), FLOAT) == "neg_infinity"
    assert literal('a"b\\\n\x01é', STR) == '"a\\"b\\\\\\n\\x01é"'
    assert literal([None, 2], VType("list", (VType("option", (INT,)),))) == "[None; Some 2]"
    assert literal((1, "x"), type_of((1, "x"))) == '(1, "x")'
    assert literal({"a": [1.5]}, type_of({"a": [1.5]})) == '[("a", [1.5])]'
    assert literal((), type_of(())) == "()" and literal(None, VType("none")) == "()"
    assert ocaml_type(type_of({"a": (1, 2)})) == "(string * (int * int)) list"
    assert ocaml_type(type_of([(1, [2.5])])) == "(int * float list) list"
    assert OCAML.call("candidate", ["1", "[]"]) == "(candidate 1 [])"
    assert OCAML.call("candidate", []) == "(candidate ())"


def test_types_unify_into_one_signature_or_the_test_is_refused() -> None:
    mixed = TestSuite(
        form="asserts", asserts=["assert f(1) == 2", "assert f(2.5) == 3", "assert f(0) is None"]
    )
    suite = translate_suite(mixed, "f", OCAML)
    assert suite.arg_types == (FLOAT,)  # 1 and 2.5: one float argument, and 1 is written 1.0
    assert [c.call for c in suite.cases] == [
        "(candidate 1.0)",
        "(candidate 2.5)",
        "(candidate 0.0)",
    ]
    assert [c.expected_text for c in suite.cases] == ["Some 2", "Some 3", "None"]
    only_empty = TestSuite(form="asserts", asserts=["assert f([]) == 0"])
    with pytest.raises(Untranslatable, match=r"argument 1 has no OCaml type.*unknown"):
        translate_suite(only_empty, "f", OCAML)
    strings_and_ints = TestSuite(form="asserts", asserts=["assert f(1) == 1", "assert f('a') == 1"])
    (skipped,) = translate_suite(strings_and_ints, "f", OCAML).skipped
    assert "mixed" in skipped.reason
    too_big = TestSuite(form="asserts", asserts=[f"assert f({2**70}) == 0"])
    with pytest.raises(Untranslatable, match="63-bit"):
        translate_suite(too_big, "f", OCAML)
    with pytest.raises(Untranslatable, match="cannot name a OCaml function"):
        translate_suite(TestSuite(form="asserts", asserts=["assert val(1) == 1"]), "val", OCAML)


def test_bundled_questions_translate_or_say_why() -> None:
    full: list[str] = []
    partial: dict[str, tuple[SkippedTest, ...]] = {}
    refused: dict[str, str] = {}
    for question in ALL_QUESTIONS:
        try:
            suite = translate_suite(question.tests, question.entry_point, OCAML)
        except Untranslatable as exc:
            refused[question.id] = str(exc)
            continue
        if suite.skipped:
            partial[question.id] = suite.skipped
        else:
            full.append(question.id)
    assert len(full) >= 0.9 * len(ALL_QUESTIONS), (refused, partial)  # 60 of 61 today
    assert all(reason for reason in refused.values())
    assert all(s.reason for skipped in partial.values() for s in skipped)
    # flatten() takes lists nested to any depth: no OCaml type holds them
    if "seed/023" in refused:
        assert "unknown" in refused["seed/023"] or "mixing types" in refused["seed/023"]
    else:
        assert any("mixing types" in s.reason for s in partial["seed/023"])


def test_prompts_and_test_files_of_every_question_compile(tmp_path: Path) -> None:
    """Every translated prompt, with a stub body, and its MultiPL-E test file, as one OCaml file:
    the comments close, the headers parse and each expected literal has the return type."""
    parts = []
    for question in ALL_QUESTIONS:
        try:
            suite = translate_suite(question.tests, question.entry_point, OCAML)
        except Untranslatable:
            continue
        header = localize_prompt(question.prompt, suite, OCAML)
        parts.append(header + '  failwith "todo"\n' + OCAML.render_tests(suite))
    (tmp_path / "all.ml").write_text("\n".join(parts), encoding="utf-8")
    compiled = subprocess.run(
        ["ocamlc", "-w", "-a", "-c", "all.ml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert compiled.returncode == 0, compiled.stderr


def test_prompt_and_test_file_of_one_question() -> None:
    question = QUESTIONS["sum_of_evens"]
    suite = translate_suite(question.tests, question.entry_point, OCAML)
    assert localize_prompt(question.prompt, suite, OCAML) == (
        "(*\n"
        " * Return the sum of the even numbers in nums (0 if there are none).\n"
        " *\n"
        " * >>> (sum_of_evens [1; 2; 3; 4])\n"
        " * 6\n"
        " *)\n"
        "let sum_of_evens (nums : int list) : int =\n"
    )
    tests = OCAML.render_tests(suite).splitlines()
    assert tests[1:3] == ["let assertions =", " let candidate = sum_of_evens in"]
    assert "  assert ((candidate [1; 2; 3; 4]) = 6);" in tests
    assert "  assert ((candidate [(-2); (-3); 8]) = 6);" in tests
    assert tests[-1] == "  ()"


def test_prompt_names_and_comments_are_made_valid_ocaml() -> None:
    parts = PromptParts("f", ("N", "type_", "x"), ("a", ""), (INT, STR, FLOAT), VType("none"))
    assert OCAML.prompt(parts).endswith("let f (n : int) (type_ : string) (x : float) : unit =\n")
    assert comment(['say "hi"']) == '(*\n * say "hi"\n *)'  # a paired quote lexes: kept
    assert comment(['unpaired " and *) end']) == "(*\n * unpaired ' and * ) end\n *)"


# ---------------------------------------------------------------- programs in the sandbox
def test_correct_solutions_pass_and_wrong_ones_fail_with_the_expected_value(
    executor: Executor,
) -> None:
    good = [program(f"good-{name}", src, name) for name, src in SOLUTIONS.items()]
    wrong = [
        program("wrong", "let sum_of_evens nums = List.length nums\n"),
        program("wrong_none", "let first_repeated _ = None\n", "first_repeated"),
        program(
            "duplicate_key",
            'let group_by_length _ = [(2, ["hi"; "to"]); (2, []); (3, ["cat"; "dog"])]\n',
            "group_by_length",
        ),
    ]
    verdicts = run(executor, *good, *wrong)
    for name in SOLUTIONS:
        verdict = verdicts[f"good-{name}"]
        assert verdict.status is Status.PASSED, (name, verdict.message)
        assert verdict.language == "ocaml" and verdict.tests_passed == verdict.tests_total > 3
    assert verdicts["wrong"].status is Status.FAILED
    assert "expected 6, got 4" in verdicts["wrong"].message
    assert all(t.checked_by == "supervisor" for t in verdicts["wrong"].tests)
    assert "expected 1, got None" in verdicts["wrong_none"].message
    assert verdicts["duplicate_key"].status is Status.FAILED
    assert "a key appears twice" in verdicts["duplicate_key"].message


def test_values_round_trip_exactly(executor: Executor) -> None:
    values = {  # Python literals
        "ints": f"[-3, {2**62 - 1}, {-(2**62)}, 9007199254740993]",
        "string": repr('tab\tquote"back\\slash\nnul\x00 é 日本 🎉'),
        "floats": "[1, 2.5, -0.0, 0.1, 1e300, 5e-324, 1e999, -1e999]",
        "tuple": "(1, 'x', None, True)",
        "one_tuple": "(5,)",
        "empty_tuple": "()",
        "none": "None",
        "dict": "{'a': [1.5], 'b': []}",
        "tuple_keys": "{(1, 2): 'x', (3, 4): 'y'}",
        "pairs": "[(1, 'a'), (2, 'b')]",
        "options": "[[None, 3], []]",
    }
    verdicts = run(executor, *(echo(name, value) for name, value in values.items()))
    for name in values:
        assert verdicts[name].status is Status.PASSED, (name, verdicts[name].message)


def test_invalid_utf8_and_cyclic_values_are_bad_values(executor: Executor) -> None:
    def returning(name: str, body: str, expected: object) -> Program:
        tests = TestSuite(form="asserts", asserts=[f"assert f(0) == {expected!r}"])
        return Program(id=name, source=f"let f _ = {body}\n", tests=tests, language="ocaml")

    verdicts = run(
        executor,
        returning("half_a_character", '"\\xc3"', "é"),  # an OCaml string is bytes
        returning("cyclic", "let rec l = 1 :: l in l", [1]),
    )
    assert verdicts["half_a_character"].status is Status.FAILED
    assert "utf-8" in verdicts["half_a_character"].message
    assert verdicts["cyclic"].status is Status.FAILED
    assert "too large" in verdicts["cyclic"].message


def test_errors_are_the_programs_own(executor: Executor) -> None:
    verdicts = run(
        executor,
        program("type_error", "let sum_of_evens (nums : int list) : int = nums + 1\n"),
        program("wrong_type", "let sum_of_evens (nums : float list) : int = 0\n"),
        program("missing", "let other nums = 0\n"),
        program("syntax", "let sum_of_evens nums = (\n"),
        program("raises", "let sum_of_evens nums = List.hd []\n"),
        program("raises_own", "exception Boom of int\nlet sum_of_evens nums = raise (Boom 3)\n"),
        program("load_raises", 'let () = failwith "at load"\n' + SUM_OF_EVENS),
        program("exit_in_call", "let sum_of_evens nums = exit 0\n"),
        program("exit_at_load", "let () = exit 0\n" + SUM_OF_EVENS),
    )
    type_error = verdicts["type_error"]
    assert type_error.status is Status.ERROR and type_error.exception_type == "CompileError"
    assert "Error: This expression has type int list" in type_error.message
    wrong_type = verdicts["wrong_type"]
    assert wrong_type.exception_type == "CompileError"
    assert "val sum_of_evens : int list -> int" in wrong_type.message  # the type the tests need
    assert "sum_of_evens' is required but not provided" in verdicts["missing"].message
    assert "Syntax error" in verdicts["syntax"].message
    raises = verdicts["raises"]
    assert raises.status is Status.ERROR and raises.exception_type == "Failure"
    assert 'Failure("hd")' in raises.message
    assert verdicts["raises_own"].exception_type == "Solution.Boom"
    load = verdicts["load_raises"]
    assert load.status is Status.ERROR and load.exception_type == "Failure"
    assert load.message.startswith("program: Failure") and "at load" in load.message
    # exit is not an exception in OCaml: the run ends before every test reported
    assert verdicts["exit_in_call"].status is Status.CRASHED
    assert verdicts["exit_at_load"].status is Status.CRASHED


def test_untranslatable_tests_make_the_program_invalid_not_skipped(executor: Executor) -> None:
    tests = TestSuite(form="asserts", asserts=["assert f(1) == 2", "assert f('a') == 2"])
    verdict = executor.run([Program(id="p", source="let f _ = 2", tests=tests, language="ocaml")])
    assert verdict[0].status is Status.INVALID
    assert "test 1 (assert f('a') == 2)" in verdict[0].message


def test_forged_records_do_not_pass(executor: Executor) -> None:
    forge_at_load = """let () =
  let oc = open_out_gen [ Open_wronly ] 0 "/dev/fd/3" in
  output_string oc "{\\"case\\":0,\\"status\\":\\"value\\",\\"value\\":6}\\n{\\"event\\":\\"done\\"}\\n";
  flush oc
let sum_of_evens nums = -1
"""
    forge_in_call = """let sum_of_evens nums =
  for i = 0 to 4 do
    Iterkd_prelude.emit (Printf.sprintf "{\\"case\\":%d,\\"status\\":\\"value\\",\\"value\\":6}" i)
  done;
  -1
"""
    verdicts = run(
        executor, program("forge_at_load", forge_at_load), program("forge_in_call", forge_in_call)
    )
    assert verdicts["forge_at_load"].status is Status.CRASHED  # records before `loaded`
    assert verdicts["forge_in_call"].status is Status.FAILED  # 6 is wrong for test 1


def test_hostile_ocaml_is_contained(executor: Executor, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    hostile = {
        "loop": ("let sum_of_evens nums = while true do () done; 0", Status.TIMEOUT),
        "fork_bomb": (
            'let sum_of_evens nums = ignore (Sys.command "b(){ b|b& };b 2>/dev/null");'
            " while true do () done; 0",
            Status.TIMEOUT,
        ),
        "huge_array": (
            "let sum_of_evens nums = Array.length (Array.make (1 lsl 34) 0)",
            Status.MEMORY,
        ),
        "growing_chunks": (
            "let sum_of_evens nums = let rec go acc = go (Array.make 1_000_000 0 :: acc) in go []",
            Status.MEMORY,
        ),
        "deep_recursion": ("let rec sum_of_evens nums = 1 + sum_of_evens nums", Status.ERROR),
        "write_outside": (
            f'let sum_of_evens nums = let oc = open_out "{outside}" in output_string oc "x"; 6',
            Status.ERROR,
        ),
        "big_file": (
            'let sum_of_evens nums = let oc = open_out "big.bin" in\n'
            "  for _ = 1 to 64 do output_string oc (String.make 65536 'x') done; close_out oc; 6",
            Status.OUTPUT_LIMIT,
        ),
        "infinite_print": (
            'let sum_of_evens nums = while true do print_string "spam" done; 0',
            Status.OUTPUT_LIMIT,
        ),
    }
    verdicts = run(executor, *(program(name, src) for name, (src, _) in hostile.items()))
    for name, (_, expected) in hostile.items():
        assert verdicts[name].status is expected, (name, verdicts[name].message)
    assert verdicts["huge_array"].exception_type == "MemoryError"
    assert verdicts["deep_recursion"].exception_type == "StackOverflow"
    assert verdicts["write_outside"].exception_type == "Sys_error" and not outside.exists()
    assert verdicts["big_file"].signal == "SIGXFSZ"
    assert processes_of(executor.sandbox_uids) == []  # the fork bomb's included
    after = run(executor, program("after", SUM_OF_EVENS))  # the pool still judges honestly
    assert after["after"].status is Status.PASSED


def test_filling_the_heap_with_small_blocks_is_a_crash_not_memory(executor: Executor) -> None:
    """A limitation, documented: the runtime cannot raise Out_of_memory while it promotes small
    blocks to the major heap, so it aborts ("Fatal error: out of memory"). Large blocks (the
    `huge_array`, `growing_chunks` programs above) raise it, and get the `memory` verdict."""
    source = "let sum_of_evens nums = let rec go acc = go (1 :: acc) in go []"
    verdict = executor.run([program("growing_list", source)])[0]
    assert verdict.status is Status.CRASHED and verdict.signal == "SIGABRT"
    assert "out of memory" in verdict.output


def test_one_executor_runs_many_copies(executor: Executor) -> None:
    copies = [program(f"copy-{i}", SUM_OF_EVENS) for i in range(20)]
    assert all(v.status is Status.PASSED for v in executor.run(copies))

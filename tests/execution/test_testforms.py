"""Splitting tests into what the sandbox runs and what only the supervisor knows."""

from __future__ import annotations

import json
import math

import pytest

from iterkd.execution.models import TestSuite
from iterkd.execution.testforms import TestFormError, check_value, compile_tests


def humaneval(body: str, prologue: str = "") -> TestSuite:
    return TestSuite(
        form="humaneval", entry_point="f", code=f"{prologue}def check(candidate):\n{body}"
    )


def only_case(assert_line: str):
    (case,) = compile_tests(TestSuite(form="asserts", asserts=[assert_line])).cases
    return case


def test_expected_values_never_reach_the_sandbox() -> None:
    compiled = compile_tests(humaneval("    assert candidate(7) == 918273645\n"))
    payload = json.dumps(compiled.sandbox_payload())
    assert "918273645" not in payload
    assert compiled.cases[0].code == "candidate(7)"
    assert compiled.candidate_alias == "candidate"


@pytest.mark.parametrize(
    ("line", "value", "expected"),
    [
        ("assert f(1) == 2", 2, True),
        ("assert f(1) == 2", 3, False),
        ("assert 2 == f(1)", 2, True),
        ("assert f(1) != 2", 3, True),
        ("assert f(1) < 5", 4, True),
        ("assert f(1) >= 5", 4, False),
        ("assert f(1) in [1, 2]", 2, True),
        ("assert 3 in f(1)", [1, 2], False),
        ("assert 3 not in f(1)", [1, 2], True),
        ("assert f(1) is None", None, True),
        ("assert f(1) is not None", 0, True),
        ("assert f(1) is True", 1, False),
        ("assert f(1)", [0], True),
        ("assert f(1)", [], False),
        ("assert not f(1)", "", True),
        ("assert abs(f(1) - 0.5) < 1e-6", 0.5000001, True),
        ("assert abs(0.5 - f(1)) <= 1e-9", 0.6, False),
        ("assert math.isclose(f(1), 2.0)", 2.0 + 1e-12, True),
        ("assert math.isclose(f(1), 2.0, abs_tol=0.1)", 2.05, True),
        ("assert f(1) == 1", True, True),  # Python's own == for builtin values
        ("assert f(1) == (1, 2)", [1, 2], False),
    ],
)
def test_supervisor_checks_follow_python_semantics(
    line: str, value: object, expected: bool
) -> None:
    case = only_case(line)
    assert case.kind == "eval"
    assert check_value(case.expectation, value)[0] is expected


def test_a_check_that_raises_is_a_failure_with_a_message() -> None:
    ok, message = check_value(only_case("assert f(1) < 5").expectation, "text")
    assert not ok and "TypeError" in message
    ok, message = check_value(only_case("assert f(1) == 2").expectation, math.nan)
    assert not ok and message == "expected 2, got nan"


def test_only_direct_calls_into_the_program_are_supervisor_checked() -> None:
    assert only_case("assert f(1) == 2").checked_by == "supervisor"
    assert only_case("assert Solution().solve(1) == 2").checked_by == "supervisor"
    assert only_case("assert len(f(1)) == 2").checked_by == "sandbox"  # len() calls __len__
    assert only_case("assert f(1) == g(2)").kind == "exec"  # no literal: runs in the sandbox
    suite = TestSuite(form="asserts", asserts=["import math", "assert math.floor(f(1)) == 2"])
    (case,) = compile_tests(suite).cases
    assert case.checked_by == "sandbox"


def test_loops_and_helpers_become_sandbox_statements_in_order() -> None:
    compiled = compile_tests(
        humaneval(
            "    x = [1, 2]\n    for v in x:\n        assert candidate(v) > 0\n    assert candidate(3) == 4\n"
        )
    )
    kinds = [(c.kind, c.is_test) for c in compiled.cases]
    assert kinds == [("exec", False), ("exec", True), ("eval", True)]


def test_imports_are_hoisted_before_the_program_and_prologue_kept() -> None:
    compiled = compile_tests(
        humaneval("    import math\n    assert candidate(1) == 1\n", "import re\nK = 3\n")
    )
    assert compiled.imports.splitlines() == ["import re", "import math"]
    assert compiled.setup == "K = 3"


def test_check_with_return_runs_as_one_function() -> None:
    compiled = compile_tests(
        humaneval("    if candidate(0) == 0:\n        return\n    assert False\n")
    )
    (case,) = compiled.cases
    assert case.code == "check(f)" and case.kind == "exec"
    assert "def check(candidate)" in compiled.setup


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        (
            TestSuite(form="asserts", asserts=["assert f(1) == 1", "assert f(("]),
            "tests.asserts[1]: ",
        ),
        (TestSuite(form="asserts", asserts=["f(1)"]), "no test"),
        (TestSuite(form="block", code="assert f(1)\x00"), "tests.code: contains a NUL byte"),
        (TestSuite(form="humaneval", entry_point="f", code="assert f(1)"), "no `def check"),
        (
            TestSuite(form="humaneval", entry_point="f", code="def check(a, b):\n    assert a"),
            "exactly one",
        ),
        (
            TestSuite(form="asserts", asserts=["assert f(1)"], imports=["import ("]),
            "tests.imports[0]",
        ),
    ],
)
def test_malformed_tests_name_where_they_are_wrong(suite: TestSuite, message: str) -> None:
    with pytest.raises(TestFormError, match=message.replace("(", r"\(").replace("[", r"\[")):
        compile_tests(suite)


def test_assert_helper_calls_count_as_tests() -> None:
    suite = TestSuite(
        form="block", code="import unittest\nunittest.TestCase().assertEqual(f(1), 2)\n"
    )
    (case,) = compile_tests(suite).cases
    assert case.is_test and case.kind == "exec"

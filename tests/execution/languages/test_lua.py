"""Lua programs in the sandbox: real lua5.4, translated tests, the same containment as Python."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from iterkd.execution import Executor, Program, SandboxConfig, Status, TestSuite
from iterkd.execution.languages.lua import LUA, canonical, literal
from iterkd.questions import load_bundled

if shutil.which("lua5.4") is None:
    if os.environ.get("CI"):
        pytest.fail("lua5.4 is not installed: `make system-deps` installs it", pytrace=False)
    pytest.skip("lua5.4 is not installed (Debian: lua5.4)", allow_module_level=True)

QUESTIONS = {q.entry_point: q for q in load_bundled("seed") + load_bundled("heldout")}
SUM_OF_EVENS = """local function sum_of_evens(nums)
  local total = 0
  for _, n in ipairs(nums) do
    if n % 2 == 0 then total = total + n end
  end
  return total
end
"""
SOLUTIONS = {
    "sum_of_evens": SUM_OF_EVENS,
    "initials": """function initials(full_name)
  local out = {}
  for word in full_name:gmatch("%S+") do out[#out + 1] = word:sub(1, 1):upper() .. "." end
  return table.concat(out)
end
""",
    "clamp": "function clamp(x, lo, hi)\n  return math.max(lo, math.min(hi, x))\nend\n",
    "is_non_increasing": """function is_non_increasing(nums)
  for i = 2, #nums do
    if nums[i] > nums[i - 1] then return false end
  end
  return true
end
""",
    "repeat_chars": """local function repeat_chars(text, n)
  return (text:gsub(".", function(c) return c:rep(n) end))
end
""",
}


def program(name: str, source: str, entry: str = "sum_of_evens") -> Program:
    return Program(id=name, source=source, tests=QUESTIONS[entry].tests, language="lua")


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    with Executor(SandboxConfig(timeout_s=5.0, file_size_mb=1)) as ex:
        yield ex


def run(executor: Executor, *programs: Program) -> dict[str, object]:
    return {v.program_id: v for v in executor.run(list(programs))}


def test_literals_are_lua_syntax() -> None:
    assert literal([1, 2.5, 'a"b\\\n\x01']) == '{1, 2.5, "a\\"b\\\\\\n\\001"}'
    assert literal({"k": [True, None]}) == '{["k"] = {true, nil}}'
    assert literal(float("inf")) == "math.huge" and literal(-(2**63)) == "math.mininteger"
    assert canonical({1: "a", 2: "b"}) == ["a", "b"] and canonical({}) == []
    assert canonical((1, {"x": (2,)})) == [1, {"x": [2]}]
    assert LUA.call("candidate", ["1", "{}"]) == "candidate(1, {})"


def test_correct_solutions_pass_and_wrong_ones_fail_with_the_expected_value(
    executor: Executor,
) -> None:
    good = [program(f"good-{name}", src, name) for name, src in SOLUTIONS.items()]
    wrong = program("wrong", "function sum_of_evens(nums) return #nums end")
    verdicts = run(executor, *good, wrong)
    for name in SOLUTIONS:
        assert verdicts[f"good-{name}"].status is Status.PASSED, verdicts[f"good-{name}"].message
        assert verdicts[f"good-{name}"].language == "lua"
    assert verdicts["wrong"].status is Status.FAILED
    assert "expected 6, got 4" in verdicts["wrong"].message
    assert all(t.checked_by == "supervisor" for t in verdicts["wrong"].tests)


def test_values_round_trip_through_the_harness(executor: Executor) -> None:
    cases = {  # Lua value -> the Python literal the test compares it with
        '"tab\\tquote\\"back\\\\slash\\nnewline é"': repr('tab\tquote"back\\slash\nnewline é'),
        "{1, {2, 3}, {}}": "[1, [2, 3], []]",
        "{a = 1.5, b = {true, false}}": "{'a': 1.5, 'b': [True, False]}",
        "math.huge": "1e999",
        "-0.1": "-0.1",
        "9007199254740993": "9007199254740993",
    }
    programs = []
    for lua_value, python_literal in cases.items():
        tests = TestSuite(form="asserts", asserts=[f"assert f(0) == {python_literal}"])
        source = f"function f(x) return {lua_value} end"
        programs.append(Program(id=lua_value, source=source, tests=tests, language="lua"))
    verdicts = run(executor, *programs)
    for lua_value in cases:
        assert verdicts[lua_value].status is Status.PASSED, (lua_value, verdicts[lua_value].message)


def test_errors_are_the_programs_own(executor: Executor) -> None:
    verdicts = run(
        executor,
        program("syntax", "function sum_of_evens(nums) return 1 ed"),
        program("missing", "function other(nums) return 0 end"),
        program("raises", "function sum_of_evens(nums) error('boom') end"),
        program("load_raises", "error('at load')\nfunction sum_of_evens(nums) return 0 end"),
        program("returns_function", "function sum_of_evens(nums) return print end"),
        program("ends_with_return", SUM_OF_EVENS + "return 42\n"),
    )
    assert verdicts["syntax"].status is Status.ERROR
    assert "'end' expected" in verdicts["syntax"].message
    assert verdicts["missing"].status is Status.ERROR
    assert "sum_of_evens" in verdicts["missing"].message
    assert verdicts["raises"].status is Status.ERROR and "boom" in verdicts["raises"].message
    assert verdicts["load_raises"].status is Status.ERROR
    assert "at load" in verdicts["load_raises"].message
    assert verdicts["returns_function"].status is Status.FAILED
    assert verdicts["ends_with_return"].status is Status.ERROR  # `local` function not reachable


def test_forged_records_and_tampering_do_not_pass(executor: Executor) -> None:
    forge = """local out = io.open("/dev/fd/3", "w")
out:write('{"case":0,"status":"value","value":6}\\n{"event":"done"}\\n'); out:flush()
function sum_of_evens(nums) return -1 end
"""
    tamper = """string.format = function() return "6" end
table.concat = function() return "6" end
io.open = nil
function sum_of_evens(nums) return -1 end
"""
    exits = "function sum_of_evens(nums) os.exit(0) end"
    verdicts = run(
        executor, program("forge", forge), program("tamper", tamper), program("exit", exits)
    )
    assert verdicts["forge"].status is Status.CRASHED  # records before `loaded` are forged
    assert verdicts["tamper"].status is Status.FAILED
    assert verdicts["exit"].status is Status.CRASHED


def test_hostile_lua_is_contained(executor: Executor, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    hostile = {
        "loop": "function sum_of_evens(nums) while true do end end",
        "fork_bomb": "function sum_of_evens(nums) os.execute(':(){ :|:& };:') while true do end end",
        "memory": "function sum_of_evens(nums) local s = string.rep('x', 2^31 - 1) return #s end",
        "write_outside": f"""function sum_of_evens(nums)
  local f = io.open("{outside}", "w")
  if f then f:write("escaped") f:close() return 6 end
  return -1
end""",
        "big_file": """function sum_of_evens(nums)
  local f = io.open("big.bin", "w")
  for i = 1, 64 do f:write(string.rep("x", 65536)) end
  f:close()
  return 6
end""",
    }
    verdicts = run(executor, *(program(name, src) for name, src in hostile.items()))
    assert verdicts["loop"].status is Status.TIMEOUT
    assert verdicts["fork_bomb"].status is Status.TIMEOUT
    assert verdicts["memory"].status is Status.MEMORY
    assert verdicts["write_outside"].status is Status.FAILED and not outside.exists()
    assert verdicts["big_file"].status is Status.OUTPUT_LIMIT
    after = run(executor, program("after", SUM_OF_EVENS))  # the pool still judges honestly
    assert after["after"].status is Status.PASSED


def test_untranslatable_tests_make_the_program_invalid_not_skipped(executor: Executor) -> None:
    tests = TestSuite(form="asserts", asserts=["assert f(1) == 2", "assert len(f(1)) == 1"])
    source = "function f(x) return 2 end"
    verdict = executor.run([Program(id="p", source=source, tests=tests, language="lua")])[0]
    assert verdict.status is Status.INVALID
    assert "test 1 (assert len(f(1)) == 1)" in verdict.message

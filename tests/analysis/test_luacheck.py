"""luacheck over a batch of Lua snippets: scores, codes, syntax errors, the entry point exempt."""

from __future__ import annotations

import os

import pytest

from iterkd.analysis.luacheck_runner import luacheck_available, luacheck_snippets

if not luacheck_available():
    if os.environ.get("CI"):
        pytest.fail("luacheck is not installed: `make system-deps` installs it", pytrace=False)
    pytest.skip("luacheck is not installed (Debian: lua-check)", allow_module_level=True)

CLEAN = "local function double(x)\n  return x * 2\nend\n"
SLOPPY = "local function f(x, y)\n  local unused = 1\n  z = x + 1\n  return x\nend\n"


def test_one_run_scores_each_snippet_of_the_batch() -> None:
    results = luacheck_snippets(
        {
            "clean": (CLEAN, "double"),
            "sloppy": (SLOPPY, "f"),
            "broken": ("local function g(\n", "g"),
            "global": ("function double(x)\n  return x * 2\nend\n", "double"),
        }
    )
    assert results["clean"].score == 10.0 and results["clean"].codes == []
    sloppy = results["sloppy"]
    assert sloppy.codes == ["W111", "W211", "W212"]  # a global, an unused local, an unused arg
    assert sloppy.score == pytest.approx(10.0 - 10.0 * 3 / 5)
    assert results["broken"].syntax_error and results["broken"].score == 0.0
    assert results["global"].codes == ["W111"] and results["global"].score < 10.0


def test_the_entry_point_is_not_unused_but_another_function_is() -> None:
    helper = "local function helper()\n  return 1\nend\n" + CLEAN
    results = luacheck_snippets({"a": (CLEAN, "double"), "b": (helper, "double")})
    assert results["a"].codes == []
    assert results["b"].codes == ["W211"]


def test_an_empty_batch_runs_nothing() -> None:
    assert luacheck_snippets({}) == {}

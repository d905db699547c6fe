"""Lua 5.4 (Debian: lua5.4): literals, the canonical form of values, prompts and the sandbox job.

Python values in Lua (MultiPL-E's mapping): lists and tuples are sequence tables `{1, 2}`, dicts
are tables `{["a"] = 1}`, None is `nil` (so it cannot sit inside a table), ints are 64-bit
integers and floats floats. A table is one type in Lua, so the comparison is made on a canonical
form: tuples are lists, an empty dict is an empty list, and a dict keyed 1..n is that list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from iterkd.execution.languages.spec import (
    Language,
    PromptParts,
    TranslatedSuite,
    native_test_file,
    no_type_check,
)
from iterkd.execution.languages.types import Untranslatable, VType, contains_kind

KEYWORDS = frozenset(
    [
        "and",
        "break",
        "do",
        "else",
        "elseif",
        "end",
        "false",
        "for",
        "function",
        "goto",
        "if",
        "in",
        "local",
        "nil",
        "not",
        "or",
        "repeat",
        "return",
        "then",
        "true",
        "until",
        "while",
    ]
)
INT64 = (-(2**63), 2**63 - 1)


def literal(value: Any, vtype: VType | None = None) -> str:
    if value is None:
        return "nil"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return "math.mininteger" if value == INT64[0] else str(value)
    if type(value) is float:
        return _float(value)
    if type(value) is str:
        return _string(value)
    if type(value) in (list, tuple):
        return "{" + ", ".join(literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{literal(k)}] = {literal(v)}" for k, v in value.items()) + "}"


def _float(value: float) -> str:
    if math.isnan(value):
        return "(0/0)"
    if math.isinf(value):
        return "math.huge" if value > 0 else "-math.huge"
    return repr(value)


def _string(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def check_value(value: Any) -> None:
    if contains_kind(value, (type(None),), inside_only=True):
        raise Untranslatable("None inside a list or dict: a Lua table cannot hold nil")
    if _has_big_int(value):
        raise Untranslatable("an integer beyond 64 bits: Lua integers are 64-bit")
    if type(value) is dict and any(type(k) is float and math.isnan(k) for k in value):
        raise Untranslatable("a NaN dict key")


def _has_big_int(value: Any) -> bool:
    if type(value) is int:
        return not INT64[0] <= value <= INT64[1]
    if type(value) in (list, tuple):
        return any(_has_big_int(v) for v in value)
    if type(value) is dict:
        return any(_has_big_int(v) for pair in value.items() for v in pair)
    return False


def canonical(value: Any) -> Any:
    """One form for what Lua cannot tell apart: tuple = list, {} = [], {1: a, 2: b} = [a, b]."""
    if type(value) in (list, tuple):
        return [canonical(v) for v in value]
    if type(value) is dict:
        items = {canonical(k): canonical(v) for k, v in value.items()}
        if list(items) == list(range(1, len(items) + 1)):
            return list(items.values())
        return items
    return value


def call(callee: str, args: Sequence[str]) -> str:
    return f"{callee}({', '.join(args)})"


@cache
def _harness() -> str:
    return resources.files(__package__).joinpath("harness/harness.lua").read_text("utf-8")


def job(source: str, suite: TranslatedSuite) -> dict[str, Any]:
    cases = "".join(f"    function(candidate) return {c.call} end,\n" for c in suite.cases)
    tests = f"return {{\n  entry = {_string(suite.entry_point)},\n  cases = {{\n{cases}  }},\n}}\n"
    files = {"solution.lua": source, "tests.lua": tests, "harness.lua": _harness()}
    return {"argv": ["lua5.4", "harness.lua"], "files": files}


def prompt(parts: PromptParts) -> str:
    comments = [f"-- {line}".rstrip() for line in parts.doc_lines]
    return "\n".join([*comments, f"local function {parts.name}({', '.join(parts.params)})"]) + "\n"


def render_tests(suite: TranslatedSuite) -> str:
    """A luaunit test file, as MultiPL-E writes them."""
    head = ["lu = require('luaunit')", "", "function test_humaneval()"]
    return native_test_file(
        suite,
        [*head, f"local candidate = {suite.entry_point}"],
        lambda call, expected: f"    lu.assertEquals({call}, {expected})",
        lambda text: f"    -- {text}",
        ["end", "", "os.exit(lu.LuaUnit.run())"],
    )


LUA = Language(
    name="lua",
    title="Lua",
    fences=("lua",),
    interpreter="lua5.4",
    debian_package="lua5.4",
    linter="luacheck",
    keywords=KEYWORDS,
    typed=False,
    literal=literal,
    check_value=check_value,
    check_types=no_type_check,
    canonical=canonical,
    call=call,
    job=job,
    prompt=prompt,
    render_tests=render_tests,
    comment="--",
    notes=(
        "lists and tuples -> sequence tables; dicts -> tables; None -> nil (not inside tables)",
        "compared on a canonical form: tuple = list, {} = [], a dict keyed 1..n = a list",
    ),
)

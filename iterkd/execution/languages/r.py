"""R (Debian: r-base-core): literals, the canonical form of values, prompts and the sandbox job.

Python values in R (MultiPL-E's mapping): a list (or tuple) of scalars of one kind is an atomic
vector `c(1, 2)`, `c("a", "b")`, `c(TRUE, FALSE)`; nested or mixed lists are `list(...)`; dicts
with string keys are named lists `list(a = 1, "my key" = 2)`; None is `NULL` (so it cannot sit
inside a container); ints and floats are doubles (so ints beyond 2**53 do not translate).
R has no scalars (a scalar is a vector of length 1) and `c()` is `NULL`, so the comparison is made
on a canonical form: tuples are lists, a one-element list of a scalar is that scalar, and an empty
list or dict is None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
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

# R's reserved words (?Reserved): none can be a parameter's or a function's plain name.
KEYWORDS = frozenset(
    [
        "if",
        "else",
        "repeat",
        "while",
        "function",
        "for",
        "next",
        "break",
        "in",
        "TRUE",
        "FALSE",
        "NULL",
        "Inf",
        "NaN",
        "NA",
        "NA_integer_",
        "NA_real_",
        "NA_character_",
        "NA_complex_",
    ]
)
SAFE_INT = 2**53  # every int up to this is exactly a double
# R refuses to start ("the limit on the number of open files is too low") when RLIMIT_NOFILE is
# below this: it keeps 60% of the descriptors for DLLs, and at least 100 DLLs. The sandbox's
# `open_files` must be at least this for R programs to run at all.
MIN_OPEN_FILES = 167
_SYNTACTIC = re.compile(r"(?:[A-Za-z]|\.[A-Za-z_.])[A-Za-z0-9_.]*|\.")
_SCALAR_TYPES = (bool, int, float, str)
_NAMED_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


# ---------------------------------------------------------------- literals
def literal(value: Any, vtype: VType | None = None) -> str:
    """A Python value as an R expression (the unified type is not needed: R is dynamic)."""
    if value is None:
        return "NULL"
    if type(value) is bool:
        return "TRUE" if value else "FALSE"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _float(value)
    if type(value) is str:
        return _string(value)
    if type(value) in (list, tuple):
        return _sequence(value)
    items = ", ".join(f"{_name(k)} = {literal(v)}" for k, v in value.items())
    return f"list({items})"


def _sequence(values: Sequence[Any]) -> str:
    """An atomic vector when R keeps every element as it is, else a list."""
    if not values:
        return "c()"
    inner = ", ".join(literal(v) for v in values)
    return f"c({inner})" if _one_atomic_kind(values) else f"list({inner})"


def _one_atomic_kind(values: Sequence[Any]) -> bool:
    """Scalars of one R kind only: `c()` would coerce mixed ones (`c(TRUE, 1)` is `c(1, 1)`)
    and flatten nested ones (`c(c(1), c(2, 3))` is `c(1, 2, 3)`)."""
    kinds = {_atomic_kind(v) for v in values}
    return len(kinds) == 1 and None not in kinds


def _atomic_kind(value: Any) -> str | None:
    if type(value) is bool:
        return "logical"
    if type(value) in (int, float):
        return "double"
    return "character" if type(value) is str else None


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(value)


def _string(value: str) -> str:
    # Control characters as \uXXXX only: R refuses a literal mixing \u with \x or octal escapes.
    out = []
    for char in value:
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)  # non-ASCII as is: the files are UTF-8
    return '"' + "".join(out) + '"'


def _syntactic(name: str) -> bool:
    """A name R reads as a plain symbol (?make.names): not reserved, not `...` or `..1`."""
    reserved = name in KEYWORDS or re.fullmatch(r"\.\.(?:\.|[0-9]+)", name) is not None
    return _SYNTACTIC.fullmatch(name) is not None and not reserved


def _name(name: str) -> str:
    """A list tag: bare when syntactic, else quoted (`list("my key" = 1)`)."""
    return name if _syntactic(name) else _string(name)


def _symbol(name: str) -> str:
    """A variable's name: bare when syntactic, else backquoted (`` `_x` <- function(...) ``)."""
    return name if _syntactic(name) else f"`{name}`"  # a Python identifier holds no backquote


# ---------------------------------------------------------------- what R can hold
def check_value(value: Any) -> None:
    if contains_kind(value, (type(None),), inside_only=True):
        raise Untranslatable("None inside a list or dict: an R vector or list cannot hold NULL")
    for item in _walk(value):
        _check_one(item)


def _walk(value: Any) -> Iterator[Any]:
    """The value and everything inside it, dict keys included."""
    yield value
    if type(value) in (list, tuple):
        for item in value:
            yield from _walk(item)
    elif type(value) is dict:
        for key, item in value.items():
            yield key
            yield from _walk(item)


def _check_one(value: Any) -> None:
    if type(value) is int and not -SAFE_INT <= value <= SAFE_INT:
        raise Untranslatable("an integer beyond 2**53: R numbers are doubles")
    if type(value) is dict and any(type(k) is not str for k in value):
        raise Untranslatable("a dict with non-string keys: the names of an R list are strings")
    if type(value) is dict and "" in value:
        raise Untranslatable("an empty dict key: R has no zero-length names")
    if type(value) is str and "\x00" in value:
        raise Untranslatable("a NUL character: R strings cannot hold one")
    if type(value) is str and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise Untranslatable("a lone surrogate: not UTF-8")


def canonical(value: Any) -> Any:
    """One form for what R cannot tell apart: tuple = list, `[x]` = x for a scalar x (a vector of
    length 1), `[]` = `{}` = None (`c()` and `list()` are NULL or empty). Applied bottom-up, to the
    expected and the returned value alike."""
    if type(value) in (list, tuple):
        items = [canonical(v) for v in value]
        if not items:
            return None
        if len(items) == 1 and type(items[0]) in _SCALAR_TYPES:
            return items[0]
        return items
    if type(value) is dict:
        if not value:
            return None
        return {canonical(k): canonical(v) for k, v in value.items()}
    return value


def call(callee: str, args: Sequence[str]) -> str:
    return f"{callee}({', '.join(args)})"


# ---------------------------------------------------------------- the sandbox job
@cache
def _harness() -> str:
    return resources.files(__package__).joinpath("harness/harness.R").read_text("utf-8")


def tests_file(suite: TranslatedSuite) -> str:
    """The test calls, each a function of `candidate`, which `harness.R` evaluates one by one."""
    cases = ",\n".join(f"    function(candidate) {c.call}" for c in suite.cases)
    return f"list(\n  entry = {_string(suite.entry_point)},\n  cases = list(\n{cases}\n  )\n)\n"


def job(source: str, suite: TranslatedSuite) -> dict[str, Any]:
    files = {"solution.R": source, "tests.R": tests_file(suite), "harness.R": _harness()}
    # --vanilla: no site or user profile, no saved workspace; the default packages are loaded
    # (stats, utils, methods...) as for any Rscript, since programs call median() or head()
    return {"argv": ["Rscript", "--vanilla", "harness.R"], "files": files}


# ---------------------------------------------------------------- prompts and native tests
def prompt(parts: PromptParts) -> str:
    comments = [f"# {line}".rstrip() for line in parts.doc_lines]
    params = ", ".join(_symbol(p) for p in parts.params)
    return "\n".join([*comments, f"{_symbol(parts.name)} <- function({params}) {{"]) + "\n"


def render_tests(suite: TranslatedSuite) -> str:
    """A test file as MultiPL-E writes them for R: `identical` on each call, quit(1) on failure."""
    head = ["test_humaneval <- function() {", f"candidate <- {_symbol(suite.entry_point)}"]
    return native_test_file(
        suite,
        head,
        lambda call, expected: f"    if(!identical({call}, {expected})){{quit('no', 1)}}",
        lambda text: f"    # {text}",
        ["}", "test_humaneval()"],
    )


R = Language(
    name="r",
    title="R",
    fences=("r", "R"),
    interpreter="Rscript",
    debian_package="r-base-core",
    linter=None,
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
    comment="#",
    min_open_files=MIN_OPEN_FILES,
    notes=(
        "a list or tuple of scalars of one kind -> c(...); nested or mixed -> list(...)",
        "dicts with str keys -> named lists; None -> NULL (not inside containers); numbers are "
        "doubles (ints beyond 2**53 do not translate)",
        "compared on a canonical form: tuple = list, [x] = x for a scalar, [] = {} = None",
        "returned values: NA -> None, a named vector or list -> dict, a matrix -> a list of rows, "
        "a factor -> its labels",
    ),
)

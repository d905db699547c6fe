"""Racket 8 (Debian: racket): literals, the canonical form of values, prompts and the sandbox job.

Python values in Racket (MultiPL-E's mapping): lists and tuples are lists `(list 1 2)`, dicts are
immutable `equal?`-based hashes `(hash "a" 1)`, None is `#f` (Racket has no separate null value;
MultiPL-E uses `#f`), ints are exact integers (no size limit) and floats flonums. So the
comparison is made on a canonical form: tuples are lists and None is False, at any depth; a
hash key that is a list comes back from the harness as a tuple (Python keys must be hashable).

In the sandbox, `harness/harness.rkt` loads the answer (`#lang racket` is assumed when it has no
`#lang` line), calls the entry point once per test through the calls of a generated `tests.rkt`
and reports each returned value as tagged JSON; exact rationals come back as floats.
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
from iterkd.execution.languages.types import Untranslatable, VType

# Syntactic forms a Python identifier can spell: as a parameter name one would shadow the form
# in the function's body (`(define (f let) ...)` leaves the body without `let`).
KEYWORDS = frozenset(
    [
        "and",
        "begin",
        "begin0",
        "case",
        "cond",
        "define",
        "delay",
        "do",
        "else",
        "for",
        "if",
        "lambda",
        "let",
        "letrec",
        "match",
        "module",
        "or",
        "parameterize",
        "provide",
        "quasiquote",
        "quote",
        "require",
        "struct",
        "unless",
        "unquote",
        "when",
        "λ",
    ]
)
# Escapes Racket's reader knows; every other control character is written as \uXXXX (exactly four
# digits: the reader takes up to four, so a following hex digit cannot be swallowed).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def literal(value: Any, vtype: VType | None = None) -> str:
    """A Python test value as a Racket expression (the type does not change how it is written)."""
    if value is None or value is False:
        return "#f"
    if value is True:
        return "#t"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _float(value)
    if type(value) is str:
        return _string(value)
    if type(value) in (list, tuple):
        return "(list" + "".join(" " + literal(v) for v in value) + ")"
    pairs = "".join(f" {literal(k)} {literal(v)}" for k, v in value.items())
    return "(hash" + pairs + ")"


def _float(value: float) -> str:
    if math.isnan(value):
        return "+nan.0"
    if math.isinf(value):
        return "+inf.0" if value > 0 else "-inf.0"
    return repr(value)  # 2.5, 1e+100, -0.0: all read back as the same flonum


def _string(value: str) -> str:
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def check_value(value: Any) -> None:
    if _has_surrogate(value):
        raise Untranslatable("a string with a lone surrogate: Racket strings hold scalar values")
    _check_keys(value)


def _has_surrogate(value: Any) -> bool:
    if type(value) is str:
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if type(value) in (list, tuple):
        return any(_has_surrogate(v) for v in value)
    if type(value) is dict:
        return any(_has_surrogate(v) for pair in value.items() for v in pair)
    return False


def _check_keys(value: Any) -> None:
    """Keys distinct in Python must stay distinct as hash keys: None and False are both `#f`."""
    if type(value) in (list, tuple):
        for item in value:
            _check_keys(item)
    elif type(value) is dict:
        keys = [canonical_key(k) for k in value]
        if any(type(k) is float and math.isnan(k) for k in keys):
            raise Untranslatable("a NaN dict key")
        if len(set(keys)) != len(keys):
            raise Untranslatable("dict keys that are one key in Racket (None and False are #f)")
        for item in value.values():
            _check_keys(item)


def canonical(value: Any) -> Any:
    """One form for what Racket cannot tell apart: tuple = list, None = False (at any depth)."""
    if value is None:
        return False
    if type(value) in (list, tuple):
        return [canonical(v) for v in value]
    if type(value) is dict:
        return {canonical_key(k): canonical(v) for k, v in value.items()}
    return value


def canonical_key(value: Any) -> Any:
    """A dict key's canonical form: as `canonical`, but sequences stay hashable tuples."""
    if value is None:
        return False
    if type(value) in (list, tuple):
        return tuple(canonical_key(v) for v in value)
    return value


def call(callee: str, args: Sequence[str]) -> str:
    return "(" + " ".join([callee, *args]) + ")"


@cache
def _harness() -> str:
    return resources.files(__package__).joinpath("harness/harness.rkt").read_text("utf-8")


def job(source: str, suite: TranslatedSuite) -> dict[str, Any]:
    """The harness reads solution.rkt as it is and calls what tests.rkt lists (calls only)."""
    cases = "".join(f"   (lambda (candidate) {c.call})\n" for c in suite.cases)
    tests = (
        "#lang racket/base\n(provide entry cases)\n"
        f"(define entry {_string(suite.entry_point)})\n"
        f"(define cases\n  (vector\n{cases}   ))\n"
    )
    files = {"solution.rkt": source, "tests.rkt": tests, "harness.rkt": _harness()}
    return {"argv": ["racket", "harness.rkt"], "files": files}


def prompt(parts: PromptParts) -> str:
    """MultiPL-E's Racket prompt: `#lang racket`, the docstring as `;;` comments, the header."""
    comments = [f";; {line}".rstrip() for line in parts.doc_lines]
    header = "(define (" + " ".join([parts.name, *parts.params]) + ")"
    return "\n".join(["#lang racket", "", *comments, header]) + "\n"


def render_tests(suite: TranslatedSuite) -> str:
    """A rackunit test file, as MultiPL-E writes them."""
    head = ["(require rackunit)", "", "(define (test-humaneval)"]
    return native_test_file(
        suite,
        [*head, f"  (let ((candidate {suite.entry_point}))"],
        lambda call, expected: f"    (check-equal? {call} {expected})",
        lambda text: f"    ;; {text}",
        ["))", "", "(test-humaneval)"],
    )


RACKET = Language(
    name="racket",
    title="Racket",
    fences=("racket", "rkt", "scheme"),
    interpreter="racket",
    debian_package="racket",
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
    comment=";;",
    notes=(
        "lists and tuples -> (list ...); dicts -> immutable (hash k v ...); None -> #f",
        "compared on a canonical form: tuple = list, None = False; exact rationals come back "
        "as floats",
    ),
)

"""OCaml 4.x (Debian: ocaml-nox): types, literals, prompts and the sandbox job.

Python values in OCaml (MultiPL-E's mapping, with the unified type of each place): int -> int
(63-bit), float -> float, bool -> bool, str -> string (UTF-8 bytes), None -> unit, a value that
is sometimes None -> an option (`Some 3` / `None`), list -> list, tuple -> tuple (an empty one is
unit, a 1-tuple its element), dict -> an association list `[("a", 1)]` of type
`(string * int) list`.

OCaml is typed, so the harness is generated for each suite: `solution.mli` pins the entry
point's type (a program of another type is a compile error that says so, and a weakly
polymorphic definition takes the tests' type), and `iterkd_harness.ml` calls it and encodes each
returned value with an encoder built for the return type (`harness/iterkd_prelude.ml`). Values
come back exact (floats as hex, non-ASCII strings as their bytes); an association list comes
back as a dict, and one holding a key twice is a bad value, so both sides compare as Python
values and no canonical form is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from iterkd.execution.languages.spec import (
    Language,
    PromptParts,
    TranslatedSuite,
    native_test_file,
)
from iterkd.execution.languages.types import Untranslatable, VType

KEYWORDS = frozenset(
    [
        "and",
        "as",
        "assert",
        "asr",
        "begin",
        "class",
        "constraint",
        "do",
        "done",
        "downto",
        "else",
        "end",
        "exception",
        "external",
        "false",
        "for",
        "fun",
        "function",
        "functor",
        "if",
        "in",
        "include",
        "inherit",
        "initializer",
        "land",
        "lazy",
        "let",
        "lor",
        "lsl",
        "lsr",
        "lxor",
        "match",
        "method",
        "mod",
        "module",
        "mutable",
        "new",
        "nonrec",
        "object",
        "of",
        "open",
        "or",
        "private",
        "rec",
        "sig",
        "struct",
        "then",
        "to",
        "true",
        "try",
        "type",
        "val",
        "virtual",
        "when",
        "while",
        "with",
    ]
)
INT63 = (-(2**62), 2**62 - 1)
PRELUDE = "iterkd_prelude"  # the module linked before the solution (harness/iterkd_prelude.ml)
BUILD = ["ocamlc", "-w", "-a", "-o", "prog"]  # bytecode: ~0.1 s, against ~0.4 s for ocamlopt
_SCALAR_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "string", "none": "unit"}
_IDENT = re.compile(r"[a-z_][A-Za-z0-9_']*\Z")


# ---------------------------------------------------------------- types
def ocaml_type(vtype: VType) -> str:
    """The OCaml type of a unified test type: `int list`, `(string * int) list`..."""
    kind, args = vtype.kind, vtype.args
    if kind in _SCALAR_TYPES:
        return _SCALAR_TYPES[kind]
    if kind in ("list", "option"):
        return f"{_operand(ocaml_type(args[0]))} {kind}"
    if kind == "dict":
        return f"({_operand(ocaml_type(args[0]))} * {_operand(ocaml_type(args[1]))}) list"
    if kind == "tuple":
        if not args:
            return "unit"
        return " * ".join(_operand(ocaml_type(arg)) for arg in args)
    raise Untranslatable(f"no OCaml type for {vtype}")


def _operand(text: str) -> str:
    """A product type in parentheses, where it is an argument or a field of another type."""
    return f"({text})" if _has_top_level(text, " * ") else text


def _has_top_level(text: str, token: str) -> bool:
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith(token, i):
            return True
    return False


def check_types(arg_types: Sequence[VType], return_type: VType) -> None:
    """Every place needs one static type: one seen only as an empty list (or None) has none."""
    for position, vtype in enumerate(arg_types):
        if vtype.has_unknown():
            raise Untranslatable(
                f"argument {position + 1} has no OCaml type: its type is unknown ({vtype}), "
                "the tests that translate pass only empty lists there"
            )
    if return_type.has_unknown():
        raise Untranslatable(
            f"the return value has no OCaml type: its type is unknown ({return_type}), "
            "the tests that translate expect only empty lists"
        )


def check_value(value: Any) -> None:
    """Raises Untranslatable for values OCaml cannot hold (types are checked on the suite)."""
    if type(value) is int and not INT63[0] <= value <= INT63[1]:
        raise Untranslatable(f"the integer {value} is beyond 63 bits: OCaml ints are 63-bit")
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Untranslatable("a string with a lone surrogate: not UTF-8") from None
    if type(value) in (list, tuple):
        for item in value:
            check_value(item)
    if type(value) is dict:
        if any(type(k) is float and math.isnan(k) for k in value):
            raise Untranslatable("a NaN dict key: no association list can match it")
        for pair in value.items():
            check_value(pair[0])
            check_value(pair[1])


# ---------------------------------------------------------------- literals
def literal(value: Any, vtype: VType) -> str:
    """`value` as an OCaml literal of its place's unified type; every literal is atomic (it
    needs no parentheses as an argument): `(-3)`, `Some 3.`, `[1; 2]`, `(1, "a")`."""
    kind, args = vtype.kind, vtype.args
    if kind == "option":
        return "None" if value is None else f"Some {literal(value, args[0])}"
    if kind == "none" and value is None:
        return "()"
    if kind == "bool" and type(value) is bool:
        return "true" if value else "false"
    if kind == "int" and type(value) is int:
        return _signed(str(value))
    if kind == "float" and type(value) in (int, float):
        return _float(float(value))
    if kind == "str" and type(value) is str:
        return _string(value)
    if kind == "list" and type(value) is list:
        return "[" + "; ".join(literal(v, args[0]) for v in value) + "]"
    if kind == "dict" and type(value) is dict:
        pairs = (f"({literal(k, args[0])}, {literal(v, args[1])})" for k, v in value.items())
        return "[" + "; ".join(pairs) + "]"
    if kind == "tuple" and type(value) is tuple and len(value) == len(args):
        return _tuple([literal(v, t) for v, t in zip(value, args, strict=True)])
    raise Untranslatable(f"the value {value!r:.60} is not of OCaml type {vtype}")


def _tuple(items: list[str]) -> str:
    if not items:
        return "()"
    return items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"


def _signed(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "infinity" if value > 0 else "neg_infinity"
    return _signed(repr(value))  # shortest round-trip form; OCaml reads it with strtod


def _string(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)  # UTF-8 bytes go raw: an OCaml string literal holds any byte
    return '"' + "".join(out) + '"'


def canonical(value: Any) -> Any:
    """Nothing to do: the harness sends each value back as the Python value it stands for (an
    association list as a dict, a float exactly) and types were unified, so Python's == on
    the expected literal and the decoded value is OCaml's = on the two."""
    return value


def call(callee: str, args: Sequence[str]) -> str:
    return f"({callee} {' '.join(args) if args else '()'})"


# ---------------------------------------------------------------- the sandbox job
@cache
def _prelude() -> str:
    path = f"harness/{PRELUDE}.ml"
    return resources.files(__package__).joinpath(path).read_text("utf-8")


def encoder(vtype: VType) -> str:
    """An OCaml expression of type `<ocaml_type(vtype)> Iterkd_prelude.encoder`."""
    kind, args = vtype.kind, vtype.args
    if kind in _SCALAR_TYPES:
        return "P." + {"str": "string", "none": "unit"}.get(kind, kind)
    if kind in ("list", "option"):
        return f"(P.{kind} {encoder(args[0])})"
    if kind == "dict":
        return f"(P.dict {encoder(args[0])} {encoder(args[1])})"
    if kind == "tuple":
        if len(args) < 2:
            return "P.tuple0" if not args else f"(P.tuple1 {encoder(args[0])})"
        names = [f"x{i}" for i in range(len(args))]
        fields = "; ".join(
            f"(fun b -> {encoder(t)} b {x})" for t, x in zip(args, names, strict=True)
        )
        return f"(fun b ({', '.join(names)}) -> P.tuple b [{fields}])"
    raise Untranslatable(f"no OCaml type for {vtype}")


def _interface(suite: TranslatedSuite) -> str:
    """solution.mli: the entry point's type, which the program must have."""
    params = [_operand(ocaml_type(t)) for t in suite.arg_types] or ["unit"]
    return f"val {suite.entry_point} : {' -> '.join([*params, ocaml_type(suite.return_type)])}\n"


def _harness(suite: TranslatedSuite) -> str:
    result = ocaml_type(suite.return_type)
    cases = "".join(f"  (fun () -> {case.call});\n" for case in suite.cases)
    return (
        "(* iterkd's OCaml test harness, part 2: generated for one test suite. *)\n"
        f"module P = Iterkd_prelude\n\n"
        f"let candidate = Solution.{suite.entry_point}\n"
        f"let encode : ({result}) P.encoder = {encoder(suite.return_type)}\n\n"
        f"let cases : (unit -> {result}) array = [|\n{cases}|]\n\n"
        "let () = P.run encode cases\n"
    )


def job(source: str, suite: TranslatedSuite) -> dict[str, Any]:
    """Link order is initialization order: the prelude (fd 3, load_start, the handler of
    uncaught exceptions), the program, then the generated calls."""
    files = {
        f"{PRELUDE}.ml": _prelude(),
        "solution.mli": _interface(suite),
        "solution.ml": source,
        "iterkd_harness.ml": _harness(suite),
    }
    build = [*BUILD, f"{PRELUDE}.ml", "solution.mli", "solution.ml", "iterkd_harness.ml"]
    return {"argv": ["ocamlrun", "prog"], "files": files, "build": build}


# ---------------------------------------------------------------- prompts and test files
def prompt(parts: PromptParts) -> str:
    """MultiPL-E's header, `let f (xs : int list) (s : string) : int =`, under the doc."""
    names = _param_names(parts.params)
    params = [f"({n} : {ocaml_type(t)})" for n, t in zip(names, parts.arg_types, strict=True)]
    header = f"let {parts.name} {' '.join(params) or '()'} : {ocaml_type(parts.return_type)} ="
    doc = comment(list(parts.doc_lines)) + "\n" if parts.doc_lines else ""
    return doc + header + "\n"


def _param_names(params: Sequence[str]) -> list[str]:
    """Valid, distinct OCaml value names: `N` -> `n`, a keyword or a clash gets a `_`."""
    names: list[str] = []
    for i, param in enumerate(params):
        name = param[:1].lower() + param[1:] if param[:1].isascii() else param
        if not _IDENT.match(name):
            name = f"arg{i + 1}"
        while name in KEYWORDS or name in names:
            name += "_"
        names.append(name)
    return names


def comment(lines: list[str]) -> str:
    """`(* ... *)` around `lines`, one ` * ` line each."""
    return "(*" + _defused("".join(f"\n * {line}".rstrip() for line in lines)) + "\n *)"


def _inline_comment(text: str) -> str:
    return f"(* {_defused(text)} *)"


def _defused(body: str) -> str:
    """A comment's text, made safe. OCaml comments nest and lex string literals, so a docstring
    holding `*)`, `(*` or an unpaired `"` would end the comment early or never: then those are
    defused (`"` -> `'`), which only changes how the text reads."""
    if _closes_cleanly(body):
        return body
    body = re.sub(r"\{(?=[a-z_%]*\|)", "{ ", body.replace('"', "'"))
    return re.sub(r"\*\)", "* )", re.sub(r"\(\*", "( *", body))


_CHAR_LITERAL = re.compile(
    r"'(?:[^\\'\n\r]|\\[\\\"'ntbr ]|\\[0-9]{3}|\\o[0-3][0-7]{2}|\\x[0-9a-fA-F]{2}|\n)'"
)
_IDENT_ANY = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")
_QUOTED_OPEN = re.compile(r"\{([a-z_]*)\|")


def _closes_cleanly(body: str) -> bool:
    """Whether OCaml's lexer reads `(*` + body + `*)` as one comment (its comment rule:
    nesting, string, quoted-string and character literals, identifiers)."""
    depth, i = 1, 0
    while i < len(body):
        if body.startswith("(*", i):
            depth, i = depth + 1, i + 2
        elif body.startswith("*)", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return False
        elif body[i] == '"':
            i = _string_end(body, i + 1)
        elif body[i] == "{" and (quoted := _QUOTED_OPEN.match(body, i)):
            end = body.find(f"|{quoted.group(1)}}}", quoted.end())
            i = -1 if end < 0 else end + len(quoted.group(1)) + 2
        elif body[i] == "{" and body.startswith("{%", i):
            return False  # a quoted extension: not worth reading
        elif (match := _CHAR_LITERAL.match(body, i)) or (match := _IDENT_ANY.match(body, i)):
            i = match.end()
        else:
            i += 1
        if i < 0:
            return False
    return depth == 1


def _string_end(text: str, i: int) -> int:
    """The index after the string literal whose body starts at `i`; -1 when it never ends."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return -1


def render_tests(suite: TranslatedSuite) -> str:
    """The test file MultiPL-E writes for OCaml: asserts on `=`, others as comments."""
    return native_test_file(
        suite,
        ["", "let assertions =", f" let candidate = {suite.entry_point} in"],
        lambda call, expected: f"  assert ({call} = {expected});",
        lambda text: f"  {_inline_comment(text)}",
        ["  ()"],
    )


OCAML = Language(
    name="ocaml",
    title="OCaml",
    fences=("ocaml", "ml"),
    interpreter="ocamlc",
    debian_package="ocaml-nox",
    linter=None,
    keywords=KEYWORDS,
    typed=True,
    literal=literal,
    check_value=check_value,
    check_types=check_types,
    canonical=canonical,
    call=call,
    job=job,
    prompt=prompt,
    render_tests=render_tests,
    comment="(*",
    notes=(
        "int -> int (63-bit), float -> float, str -> string, None -> unit, bool -> bool",
        "a place that is sometimes None -> option; list -> list; tuple -> tuple",
        "dict -> association list [(k, v); ...] : (K * V) list, compared as a dict "
        "(a key twice is a bad value)",
        "every test's values must share one type: a test that breaks it is skipped, "
        "and an argument seen only as [] has no type (the question is untranslatable)",
    ),
    name_pattern=r"[a-z_][A-Za-z0-9_']*",  # a capital would be a constructor
)

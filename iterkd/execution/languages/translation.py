"""Python tests -> another language's tests, in the style of MultiPL-E.

Only `assert f(<literals>) <op> <literal>` tests translate (and `abs(f(..) - x) < tol`,
`math.isclose`, bare `assert f(..)`), with values of simple types (`types.py`). Each such assert
becomes a call of `candidate` in the target language; what it is compared with stays in the
supervisor, as it does for Python (the sandbox ships the returned value back and the comparison
happens outside). Every other test is listed in `TranslatedSuite.skipped` with the reason: it is
reported, never guessed at.

    suite = translate_suite(question.tests, question.entry_point, LANGUAGES["lua"])
    narrowed = narrow_suite(question.tests, suite)   # the Python asserts that did translate
"""

from __future__ import annotations

import ast
import dataclasses
import operator
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from iterkd.execution.languages.spec import (
    Language,
    SkippedTest,
    TranslatedCase,
    TranslatedSuite,
)
from iterkd.execution.languages.types import ANY, UNKNOWN, Untranslatable, VType, type_of, unify
from iterkd.execution.models import TestSuite
from iterkd.execution.testforms import Case, Expectation, TestFormError, compile_tests

_ORDERED_OPS = (operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge)
_IDENTITY_OPS = (operator.is_, operator.is_not)


@dataclasses.dataclass
class _Parsed:
    index: int
    case: Case
    args: tuple[Any, ...]
    result_type: VType


def translate_suite(
    suite: TestSuite, entry_point: str | None, language: Language
) -> TranslatedSuite:
    """The suite's translatable asserts in `language`; Untranslatable when none is."""
    try:
        compiled = compile_tests(suite)
    except TestFormError as exc:
        raise Untranslatable(f"the tests cannot be read: {exc}") from None
    if compiled.setup.strip():
        raise Untranslatable("tests.setup holds helper code that only Python can run")
    callees = {entry_point, compiled.candidate_alias} - {None}
    parsed, skipped = _parse_cases(compiled.cases, callees, language)
    entry = entry_point or _first_callee(compiled.cases)
    if entry in language.keywords or not re.fullmatch(language.name_pattern, entry):
        raise Untranslatable(f"the function name {entry!r} cannot name a {language.title} function")
    parsed, skipped = _same_arity(parsed, skipped)
    parsed, arg_types, return_type, skipped = _unified(parsed, skipped, language.typed)
    if not parsed:
        reasons = "; ".join(sorted({s.reason for s in skipped})) or "no assert"
        raise Untranslatable(f"no test translates to {language.title}: {reasons}")
    language.check_types(arg_types, return_type)
    cases = tuple(_render(p, arg_types, return_type, language) for p in parsed)
    skipped.sort(key=lambda s: s.index)
    return TranslatedSuite(language.name, entry, cases, arg_types, return_type, tuple(skipped))


def narrow_suite(suite: TestSuite, translated: TranslatedSuite) -> TestSuite:
    """The Python tests reduced to the asserts that translated, calling the entry point."""
    asserts = [_with_callee(case.source, translated.entry_point) for case in translated.cases]
    return TestSuite(
        form="asserts", asserts=asserts, entry_point=translated.entry_point, imports=suite.imports
    )


def _with_callee(source: str, entry_point: str) -> str:
    """`assert candidate(1) == 2` (HumanEval's alias) -> `assert f(1) == 2`."""
    tree = ast.parse(source)
    call = _the_call(tree.body[0])
    if isinstance(call.func, ast.Name):
        call.func.id = entry_point
    return ast.unparse(tree)


def _the_call(stmt: ast.stmt) -> ast.Call:
    calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return next(c for c in calls if c.func.id not in ("abs",))  # type: ignore[union-attr]


# ---------------------------------------------------------------- one case
def _parse_cases(
    cases: Sequence[Case], callees: set[str], language: Language
) -> tuple[list[_Parsed], list[SkippedTest]]:
    parsed, skipped = [], []
    for index, case in enumerate(cases):
        try:
            parsed.append(_parse_case(index, case, callees, language))
        except Untranslatable as exc:
            skipped.append(SkippedTest(index, case.source, str(exc)))
    return parsed, skipped


def _parse_case(index: int, case: Case, callees: set[str], language: Language) -> _Parsed:
    if not case.is_test:
        raise Untranslatable("a statement between the tests, not an assert")
    if case.kind != "eval" or case.checked_by != "supervisor" or case.expectation is None:
        raise Untranslatable("not `assert f(...) == value`: the test computes in Python")
    call = ast.parse(case.code, mode="eval").body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise Untranslatable("the tested expression is not a plain function call")
    if callees and call.func.id not in callees:
        raise Untranslatable(f"calls {call.func.id!r}, not the entry point")
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        raise Untranslatable("keyword or starred arguments")
    args = tuple(_literal_arg(i, node) for i, node in enumerate(call.args))
    for value in args:
        language.check_value(value)
    result_type = _result_type(case.expectation)
    if case.expectation.kind == "compare":
        language.check_value(case.expectation.literal)
    return _Parsed(index, case, args, result_type)


def _literal_arg(position: int, node: ast.expr) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise Untranslatable(f"argument {position + 1} is not a literal value") from None
    type_of(value)  # raises for sets, bytes, complex...
    return value


def _result_type(expectation: Expectation) -> VType:
    if expectation.kind in ("abs_tol", "isclose"):
        return VType("float")
    if expectation.kind in ("truthy", "falsy"):
        return VType("bool")
    if expectation.op in _IDENTITY_OPS:
        return type_of(expectation.literal)
    if expectation.op not in _ORDERED_OPS:
        raise Untranslatable("a membership test (`in`), not a comparison of the returned value")
    return type_of(expectation.literal)


def _first_callee(cases: Sequence[Case]) -> str:
    for case in cases:
        if case.kind == "eval":
            node = ast.parse(case.code, mode="eval").body
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                return node.func.id
    raise Untranslatable("no test calls a function by name")


# ---------------------------------------------------------------- the suite's one signature
def _same_arity(
    parsed: list[_Parsed], skipped: list[SkippedTest]
) -> tuple[list[_Parsed], list[SkippedTest]]:
    if not parsed:
        return parsed, skipped
    arity = Counter(len(p.args) for p in parsed).most_common(1)[0][0]
    for p in parsed:
        if len(p.args) != arity:
            reason = f"called with {len(p.args)} arguments; the other tests pass {arity}"
            skipped.append(SkippedTest(p.index, p.case.source, reason))
    return [p for p in parsed if len(p.args) == arity], skipped


def _unified(
    parsed: list[_Parsed], skipped: list[SkippedTest], typed: bool
) -> tuple[list[_Parsed], tuple[VType, ...], VType, list[SkippedTest]]:
    """One type per argument and for the result over all cases. In a typed language a case
    that breaks it is skipped; in a dynamic one that place is of type `any`."""
    join = unify if typed else _unify_or_any
    arity = len(parsed[0].args) if parsed else 0
    arg_types, return_type, kept = (UNKNOWN,) * arity, UNKNOWN, []
    for p in parsed:
        try:
            new_args = tuple(join(t, type_of(v)) for t, v in zip(arg_types, p.args, strict=True))
            new_return = join(return_type, p.result_type)
            if typed and any(t.has_any() for t in (*new_args, new_return)):
                raise Untranslatable("a value mixing types, which a typed language cannot hold")
        except Untranslatable as exc:
            skipped.append(SkippedTest(p.index, p.case.source, str(exc)))
            continue
        arg_types, return_type = new_args, new_return
        kept.append(p)
    return kept, arg_types, return_type, skipped


def _unify_or_any(a: VType, b: VType) -> VType:
    try:
        return unify(a, b)
    except Untranslatable:
        return ANY


def _render(
    p: _Parsed, arg_types: tuple[VType, ...], return_type: VType, language: Language
) -> TranslatedCase:
    rendered = [language.literal(v, t) for v, t in zip(p.args, arg_types, strict=True)]
    expectation = p.case.expectation
    assert expectation is not None
    expected_text = None
    if expectation.kind == "compare":
        if expectation.op in (operator.eq, operator.is_):
            expected_text = language.literal(expectation.literal, return_type)
        expectation = dataclasses.replace(
            expectation, literal=language.canonical(expectation.literal)
        )
    return TranslatedCase(
        index=p.index,
        source=p.case.source,
        args=p.args,
        call=language.call("candidate", rendered),
        expectation=expectation,
        expected_text=expected_text,
    )

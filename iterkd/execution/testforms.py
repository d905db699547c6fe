"""Turn a TestSuite into cases: what the sandbox runs, and what only the supervisor knows.

An assert with a literal on one side (`assert f(x) == 3`, `assert 3 in f(x)`, `assert f(x) is None`,
`assert abs(f(x) - 0.5) < 1e-6`, `assert math.isclose(f(x), 0.5)`) and a bare `assert f(x)` become
`eval` cases: the sandbox evaluates only the expression holding the call and ships the value back;
the literal and the operator stay here, in the supervisor. Everything else (loops of asserts,
asserts between two computed values, helper statements) becomes an `exec` case run in the sandbox.

An eval case is `checked_by="supervisor"` when its expression is a direct call into the program
(the value is then the program's own output, type-checked on the way out). If a builtin or a test
helper sits between the program and the literal (`len(f(x)) == 3`), the program's objects take part
in computing the value inside the sandbox, so it is marked `sandbox`, honestly.
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from iterkd.execution.models import TestSuite

_NOTHING = object()
_BUILTIN_NAMES = frozenset(dir(builtins))
_COMPARE_OPS: dict[type[ast.cmpop], Any] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_SINGLETONS = (None, True, False)


class TestFormError(ValueError):
    """The tests themselves are malformed; the message names where (e.g. `tests.asserts[2]`)."""

    __test__ = False


@dataclass(frozen=True)
class Expectation:
    """A check the supervisor applies to the value the sandbox returned."""

    kind: Literal["compare", "truthy", "falsy", "abs_tol", "isclose"]
    op: Any = None  # a callable for `compare`
    literal: Any = None
    literal_left: bool = False  # `3 in f(x)`: the literal is the left operand
    tol: float = 0.0
    strict: bool = True
    rel_tol: float = 1e-9


@dataclass(frozen=True)
class Case:
    kind: Literal["eval", "exec"]
    code: str  # what the sandbox runs: an expression (eval) or statements (exec)
    source: str  # the original statement, for reports
    is_test: bool
    expectation: Expectation | None = None
    checked_by: Literal["supervisor", "sandbox"] = "sandbox"


@dataclass
class CompiledTests:
    imports: str
    setup: str
    cases: list[Case]
    entry_point: str | None
    candidate_alias: str | None = None
    test_names: set[str] = field(default_factory=set)
    # other languages: their returned values are compared in the language's canonical form
    normalize: Callable[[Any], Any] | None = None

    def sandbox_payload(self) -> dict[str, Any]:
        """The part that goes into the sandbox: no literals of eval cases, no expectations."""
        return {
            "test_imports": self.imports,
            "test_setup": self.setup,
            "entry_point": self.entry_point,
            "candidate_alias": self.candidate_alias,
            "cases": [{"kind": c.kind, "code": c.code} for c in self.cases],
        }


def compile_tests(suite: TestSuite) -> CompiledTests:
    compiled = CompiledTests(imports="", setup=suite.setup, cases=[], entry_point=suite.entry_point)
    imports = [_parse(line, f"tests.imports[{i}]") for i, line in enumerate(suite.imports)]
    compiled.test_names |= _bound_names([s for body in imports for s in body])
    compiled.test_names |= _bound_names(_parse(suite.setup, "tests.setup"))
    import_lines = [ast.unparse(s) for body in imports for s in body]
    if suite.form == "asserts":
        for i, line in enumerate(suite.asserts or []):
            _add_statements(compiled, _parse(line, f"tests.asserts[{i}]"), import_lines)
    elif suite.form == "block":
        _add_statements(compiled, _parse(suite.code or "", "tests.code"), import_lines)
    else:
        _add_humaneval(compiled, _parse(suite.code or "", "tests.code"), import_lines)
    compiled.imports = "\n".join(import_lines)
    if not any(case.is_test for case in compiled.cases):
        raise TestFormError("no test: the tests contain no assert statement")
    return compiled


def _parse(code: str, where: str) -> list[ast.stmt]:
    if not isinstance(code, str):
        raise TestFormError(f"{where}: expected a string, got {type(code).__name__}")
    if "\x00" in code:
        raise TestFormError(f"{where}: contains a NUL byte")
    try:
        return ast.parse(code).body
    except SyntaxError as exc:
        raise TestFormError(f"{where}: {exc.msg} (line {exc.lineno})") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise TestFormError(f"{where}: cannot be parsed ({type(exc).__name__})") from None


def _bound_names(statements: list[ast.stmt]) -> set[str]:
    """Names that test code binds at its top level (imports, defs, assignments)."""
    names: set[str] = set()
    for stmt in statements:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        else:
            names |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and _is_store(n)}
    return names


def _is_store(node: ast.Name) -> bool:
    return isinstance(node.ctx, ast.Store)


def _add_statements(compiled: CompiledTests, body: list[ast.stmt], import_lines: list[str]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            import_lines.append(ast.unparse(stmt))  # imported before the program can patch them
            compiled.test_names |= _bound_names([stmt])
            continue
        if not isinstance(stmt, ast.Assert):
            compiled.test_names |= _bound_names([stmt])
        compiled.cases.append(_case(stmt, compiled))


def _add_humaneval(compiled: CompiledTests, body: list[ast.stmt], import_lines: list[str]) -> None:
    checks = [s for s in body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if not checks:
        raise TestFormError("tests.code: no `def check(candidate)` found")
    check = checks[-1]
    if len(check.args.args) != 1:
        raise TestFormError("tests.code: `check` must take exactly one argument (the candidate)")
    prologue = [s for s in body if s is not check]
    for stmt in prologue:
        target = import_lines if isinstance(stmt, ast.Import | ast.ImportFrom) else None
        if target is not None:
            target.append(ast.unparse(stmt))
    others = [s for s in prologue if not isinstance(s, ast.Import | ast.ImportFrom)]
    compiled.test_names |= _bound_names(prologue)
    compiled.setup = "\n".join(filter(None, [compiled.setup, *map(ast.unparse, others)]))
    if _needs_whole_function(check):
        compiled.setup = "\n".join(filter(None, [compiled.setup, ast.unparse(check)]))
        call = f"check({compiled.entry_point})"
        compiled.cases.append(Case("exec", call, call, is_test=True))
        return
    compiled.candidate_alias = check.args.args[0].arg
    _add_statements(compiled, check.body, import_lines)


def _needs_whole_function(check: ast.FunctionDef) -> bool:
    """`return`, `yield`, `global` or `nonlocal` in check's own body: it cannot be split."""
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    stack = list(check.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom | ast.Global | ast.Nonlocal):
            return True
        if not isinstance(node, nested):
            stack.extend(ast.iter_child_nodes(node))
    return False


# ---------------------------------------------------------------- one statement -> one case
def _case(stmt: ast.stmt, compiled: CompiledTests) -> Case:
    source = ast.unparse(stmt)
    if not isinstance(stmt, ast.Assert):
        return Case("exec", source, source, is_test=_contains_assert(stmt))
    matched = _match(stmt.test)
    if matched is None:
        return Case("exec", source, source, is_test=True)
    expr, expectation = matched
    checked_by = "supervisor" if _is_program_call(expr, compiled) else "sandbox"
    return Case("eval", ast.unparse(expr), source, True, expectation, checked_by)


def _contains_assert(stmt: ast.stmt) -> bool:
    """An assert statement, or a call of an assert helper (`self.assertEqual`, `assert_allclose`)."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.startswith("assert"):
                return True
    return False


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOTHING


def _match(test: ast.expr) -> tuple[ast.expr, Expectation] | None:
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        return _match_compare(test.left, test.ops[0], test.comparators[0])
    if isinstance(test, ast.Call) and _is_isclose(test):
        return _match_isclose(test)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        if _literal(test.operand) is _NOTHING:
            return test.operand, Expectation("falsy")
        return None
    if _literal(test) is _NOTHING:
        return test, Expectation("truthy")
    return None


def _match_compare(left: ast.expr, op: ast.cmpop, right: ast.expr) -> tuple | None:
    abs_match = _match_abs_tol(left, op, right)
    if abs_match is not None:
        return abs_match
    fn = _COMPARE_OPS[type(op)]
    lit_right, lit_left = _literal(right), _literal(left)
    is_singleton = any(lit_right is s for s in _SINGLETONS)
    if isinstance(op, ast.Is | ast.IsNot) and not is_singleton:
        return None
    if lit_right is not _NOTHING and lit_left is _NOTHING:
        return left, Expectation("compare", fn, lit_right)
    if (
        lit_left is not _NOTHING
        and lit_right is _NOTHING
        and not isinstance(op, ast.Is | ast.IsNot)
    ):
        return right, Expectation("compare", fn, lit_left, literal_left=True)
    return None


def _match_abs_tol(left: ast.expr, op: ast.cmpop, right: ast.expr) -> tuple | None:
    """`abs(E - L) < T` or `abs(L - E) <= T` with literals L and T."""
    if not isinstance(op, ast.Lt | ast.LtE) or not _is_call_to(left, "abs", 1):
        return None
    inner, tol = left.args[0], _literal(right)  # type: ignore[attr-defined]
    if not isinstance(inner, ast.BinOp) or not isinstance(inner.op, ast.Sub) or not _is_number(tol):
        return None
    for expr, lit in ((inner.left, inner.right), (inner.right, inner.left)):
        value = _literal(lit)
        if _is_number(value) and _literal(expr) is _NOTHING:
            return expr, Expectation(
                "abs_tol", literal=value, tol=tol, strict=isinstance(op, ast.Lt)
            )
    return None


def _is_isclose(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "isclose"
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
        and len(call.args) == 2
    )


def _match_isclose(call: ast.Call) -> tuple | None:
    kw = {k.arg: _literal(k.value) for k in call.keywords}
    if set(kw) - {"rel_tol", "abs_tol"} or not all(_is_number(v) for v in kw.values()):
        return None
    rel, abs_ = kw.get("rel_tol", 1e-9), kw.get("abs_tol", 0.0)
    for expr, lit in ((call.args[0], call.args[1]), (call.args[1], call.args[0])):
        value = _literal(lit)
        if _is_number(value) and _literal(expr) is _NOTHING:
            return expr, Expectation("isclose", literal=value, tol=abs_, rel_tol=rel)
    return None


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _is_call_to(node: ast.expr, name: str, nargs: int) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == name
        and len(node.args) == nargs
        and not node.keywords
    )


def _is_program_call(expr: ast.expr, compiled: CompiledTests) -> bool:
    """A call whose callee is rooted in a name the program (not the tests, not builtins) bound."""
    if not isinstance(expr, ast.Call):
        return False
    root = expr.func
    while isinstance(root, ast.Attribute | ast.Call | ast.Subscript):
        root = root.func if isinstance(root, ast.Call) else root.value
    if not isinstance(root, ast.Name):
        return False
    if root.id == compiled.candidate_alias:
        return True
    return root.id not in _BUILTIN_NAMES and root.id not in compiled.test_names


# ---------------------------------------------------------------- the supervisor's side of a check
def check_value(expectation: Expectation, value: Any) -> tuple[bool, str]:
    """Apply the check to a decoded (exact builtin) value; any exception is a failed check."""
    try:
        ok = _apply(expectation, value)
    except (TypeError, ValueError, OverflowError, RecursionError, ZeroDivisionError) as exc:
        return False, f"cannot check the returned value {_short(value)}: {type(exc).__name__}"
    if ok:
        return True, ""
    if expectation.kind == "compare":
        return False, f"expected {_short(expectation.literal)}, got {_short(value)}"
    return False, f"got {_short(value)}"


def _apply(exp: Expectation, value: Any) -> bool:
    if exp.kind == "compare":
        left, right = (exp.literal, value) if exp.literal_left else (value, exp.literal)
        return bool(exp.op(left, right))
    if exp.kind == "truthy":
        return bool(value)
    if exp.kind == "falsy":
        return not value
    if exp.kind == "abs_tol":
        diff = abs(value - exp.literal)
        return bool(diff < exp.tol if exp.strict else diff <= exp.tol)
    return math.isclose(value, exp.literal, rel_tol=exp.rel_tol, abs_tol=exp.tol)


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for str(): sys.get_int_max_str_digits()
        return f"<int of {value.bit_length()} bits>"
    return text if len(text) <= limit else text[:limit] + "..."

"""Teacher text -> candidate question, or the list of reasons it is not one.

The format (asked for by `prompts/synthesize.jinja`) is three headings, each followed by one
fenced block (a section without a fence is read as its raw text, so a missing fence alone does
not lose a candidate):

    ### Question   imports (optional) + one function signature with a docstring, no body
    ### Tests      assert statements calling that function (imports allowed, nothing else)
    ### Solution   a complete program defining that function

Every check that can run does, so a rejected candidate carries all its reasons, each
`code: detail` (the code before the colon is what the summaries count).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from iterkd.codeblocks import extract_code
from iterkd.questions import Question
from iterkd.records import Bucket

SECTIONS: dict[str, str] = {  # heading word -> section
    "question": "question",
    "prompt": "question",
    "test": "tests",
    "tests": "tests",
    "solution": "solution",
    "reference solution": "solution",
    "reference": "solution",
}
_HEADING = re.compile(
    r"^[ \t]*#{1,6}[ \t]*\**[ \t]*(" + "|".join(sorted(SECTIONS, key=len, reverse=True)) + r")"
    r"[ \t]*:?[ \t]*\**[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Candidate:
    prompt: str  # the signature and docstring, ending with a newline
    entry_point: str
    asserts: tuple[str, ...]  # one assert statement each, as ast.unparse writes it
    imports: tuple[str, ...]  # import statements the tests need
    solution: str


@dataclass(frozen=True)
class ParseResult:
    candidate: Candidate | None
    reasons: tuple[str, ...] = ()


def parse_candidate(text: str) -> ParseResult:
    if not text.strip():
        return ParseResult(None, ("empty_text: no text (none generated, or the prompt skipped)",))
    sections = split_sections(text)
    reasons = [f"missing_section: no ### {name.title()} section" for name in _absent(sections)]
    prompt, entry_point = _question(sections.get("question"), reasons)
    asserts, imports = _tests(sections.get("tests"), entry_point, reasons)
    solution = _solution(sections.get("solution"), entry_point, reasons)
    if reasons or prompt is None or entry_point is None or solution is None:
        return ParseResult(None, tuple(reasons))
    return ParseResult(Candidate(prompt, entry_point, asserts, imports, solution))


def split_sections(text: str) -> dict[str, str]:
    """Section -> its code (the first fenced block under the heading, else the raw text). A
    section given twice keeps its first occurrence."""
    headings = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=False):
        name = SECTIONS[" ".join(heading.group(1).lower().split())]
        body = text[heading.end() : following.start() if following else len(text)]
        out.setdefault(name, extract_code(body).strip("\n"))
    return out


def _absent(sections: dict[str, str]) -> list[str]:
    return [
        name for name in ("question", "tests", "solution") if not sections.get(name, "").strip()
    ]


def _parsed(code: str, section: str, reasons: list[str]) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        reasons.append(f"{section}_syntax_error: {exc.msg} (line {exc.lineno})")
    except (ValueError, RecursionError, MemoryError) as exc:
        reasons.append(f"{section}_syntax_error: {type(exc).__name__}")
    return None


def _question(code: str | None, reasons: list[str]) -> tuple[str | None, str | None]:
    """(prompt, entry point): the text up to the end of the docstring of the one function."""
    if not code or (tree := _parsed(code, "question", reasons)) is None:
        return None, None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    others = [
        n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.Import | ast.ImportFrom)
    ]
    if len(functions) != 1 or others:
        reasons.append(
            f"question_not_one_function: {len(functions)} function(s) and "
            f"{len(others)} other statement(s) at the top level"
        )
        return None, None
    function = functions[0]
    docstring = function.body[0]
    if ast.get_docstring(function) is None:
        reasons.append(f"question_no_docstring: {function.name} has no docstring")
        return None, function.name
    if any(not _is_placeholder(stmt) for stmt in function.body[1:]):
        reasons.append(f"question_has_body: {function.name} is implemented in the question")
        return None, function.name
    lines = code.splitlines()[: docstring.end_lineno]
    return "\n".join(lines).rstrip() + "\n", function.name


def _is_placeholder(stmt: ast.stmt) -> bool:
    """`pass` or `...`: the body a bare signature is allowed to have."""
    if isinstance(stmt, ast.Pass):
        return True
    return isinstance(stmt, ast.Expr) and getattr(stmt.value, "value", None) is Ellipsis


def _tests(
    code: str | None, entry_point: str | None, reasons: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not code or (tree := _parsed(code, "tests", reasons)) is None:
        return (), ()
    asserts, imports = [], []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            imports.append(ast.unparse(stmt))
        elif isinstance(stmt, ast.Assert):
            asserts.append(stmt)
        else:
            kind = type(stmt).__name__
            reasons.append(f"tests_not_asserts: line {stmt.lineno} is a {kind}, not an assert")
    if not asserts:
        reasons.append("no_tests: the Tests section holds no assert")
    elif entry_point is not None:
        blind = [a.lineno for a in asserts if not _calls(a, entry_point)]
        if blind:
            reasons.append(f"tests_without_call: line(s) {blind} do not call {entry_point}")
    return tuple(ast.unparse(a) for a in asserts), tuple(imports)


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(node)
    )


def _solution(code: str | None, entry_point: str | None, reasons: list[str]) -> str | None:
    if not code or (tree := _parsed(code, "solution", reasons)) is None:
        return None
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if entry_point is not None and entry_point not in defined:
        reasons.append(f"solution_lacks_entry_point: no top-level def {entry_point}")
        return None
    return code.rstrip() + "\n"


def to_question(
    candidate: Candidate,
    *,
    question_id: str,
    parent: Question,
    bucket: Bucket,
    tags: Sequence[str],
    asserts: Sequence[str] | None = None,
) -> Question:
    """The Question a candidate becomes: its parent's tags then `tags` (how it was asked: the
    strategy, the Evol-Instruct operation); `asserts` (default: all of them) are the kept tests."""
    kept = list(candidate.asserts if asserts is None else asserts)
    return Question(
        id=question_id,
        prompt=candidate.prompt,
        entry_point=candidate.entry_point,
        tests={
            "form": "asserts",
            "asserts": kept,
            "entry_point": candidate.entry_point,
            "imports": list(candidate.imports),
        },
        reference_solution=candidate.solution,
        difficulty=bucket,
        tags=[*dict.fromkeys([*parent.tags, *tags])],
        source="synthesized",
        parent_id=parent.id,
    )

"""Teacher text -> candidate question, or the list of reasons it is not one.

The format asked for (`synthesize_format.jinja`) is three headings, each followed by one fenced
block:

    ### Question   imports (optional) + one function signature with a docstring, no body
    ### Tests      assert statements calling that function (imports allowed, nothing else)
    ### Solution   a complete program defining that function

What models really write is read too, as long as every field is really in the reply:
- a heading may be decorated (`## **Question:**`, `**Tests**`, `2. Solution`, `Tests:` at the
  start of a line of its own) or named otherwise (`Problem`, `Test cases`, `Implementation`);
  without a Question heading, a fenced block before the first heading is the question (note
  `question_without_heading`);
- a section without a fence is its raw text; where prose surrounds the code, the code in it (a
  `def` and its indented block; in Tests, the `assert` and `import` lines, list markers and
  inline backticks taken off); a Tests section's fenced blocks are read together;
- a question given with its body: the prompt is cut at the end of the docstring, and without a
  Solution section that function is the solution (note `solution_from_question`);
- without a Tests section, the top-level asserts of the solution that call the function (or
  those under its `if __name__ == "__main__":`) are the tests and leave the solution (note
  `tests_from_solution`).
Nothing is guessed: no signature with a docstring, no assert, no solution is a reason. Every
check that can run does, so a rejected candidate carries all its reasons, each `code: detail`
(the code before the colon is what the summaries count); a parsed one carries its notes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from iterkd.codeblocks import extract_code
from iterkd.questions import Question
from iterkd.records import Bucket

SECTIONS: dict[str, str] = {  # heading words -> section
    "question": "question",
    "prompt": "question",
    "problem": "question",
    "exercise": "question",
    "new exercise": "question",
    "test": "tests",
    "tests": "tests",
    "test cases": "tests",
    "unit tests": "tests",
    "solution": "solution",
    "reference solution": "solution",
    "reference": "solution",
    "implementation": "solution",
}
_WORDS = "|".join(sorted((re.escape(k).replace(r"\ ", r"[ \t]+") for k in SECTIONS), key=len,
                         reverse=True))  # fmt: skip
# A heading is a line of its own: markdown `#`s (indented or not), or at the start of the line a
# numbered / bold / colon-ended word ("2. **Tests:**"); a `# Tests` comment in code is one too,
# as it always was (a heading inside a fence would be no better a guess).
_HEADING = re.compile(
    r"^(?:[ \t]*\#{1,6}[ \t]*)?(?:\d+[.)][ \t]*)?(?:[*_]{1,2}[ \t]*)?(" + _WORDS + r")"
    r"[ \t]*:?[ \t]*(?:[*_]{1,2})?[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FENCE = re.compile(r"```[^`\n]*\n(.*?)(?:```|\Z)", re.DOTALL)  # as codeblocks reads one
_CODE_START = re.compile(r"(?:async[ \t]+def|def|class|import|from[ \t]+\S+[ \t]+import|@)\b")
_ASSERT_LINE = re.compile(r"^[ \t]*(?:[-*+][ \t]+|\d+[.)][ \t]+)?`?(assert\b.*?)`?[ \t]*$")
_IMPORT_LINE = re.compile(r"^(?:import[ \t]+\S|from[ \t]+\S+[ \t]+import[ \t]+\S)")
_MAX_STATEMENT_LINES = 20  # an assert continued over more lines than this is not one


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
    notes: tuple[str, ...] = ()  # what was read leniently, each `code: detail`


@dataclass(frozen=True)
class _Question:
    prompt: str | None  # None: rejected (the reason is written down)
    entry_point: str | None
    implementation: str | None = None  # the question's own body, imports included


def parse_candidate(text: str) -> ParseResult:
    if not text.strip():
        return ParseResult(None, ("empty_text: no text (none generated, or the prompt skipped)",))
    bodies = section_bodies(text)
    reasons: list[str] = []
    notes: list[str] = []
    if "question" not in bodies and (preamble := _preamble(text)) and _fenced(preamble):
        bodies["question"] = preamble  # the code before the first heading, its own unnamed
        notes.append("question_without_heading: the code block before the first heading")
    question = _question(_code(bodies.get("question")), reasons)
    solution_code = _code(bodies.get("solution"))
    if not solution_code and question.implementation:
        solution_code = question.implementation
        notes.append(f"solution_from_question: the body of {question.entry_point} in Question")
    tests_code = _tests_code(bodies.get("tests"), reasons)
    if not tests_code and solution_code and question.entry_point:
        tests_code, solution_code = _asserts_out_of(solution_code, question.entry_point)
        if tests_code:
            notes.append("tests_from_solution: the asserts after the solution")
    found = {  # a section with nothing in it (an empty fence) is missing too
        "question": _content(bodies.get("question")),
        "tests": tests_code or _content(bodies.get("tests")),
        "solution": solution_code or _content(bodies.get("solution")),
    }
    reasons[:0] = [
        f"missing_section: no ### {name.title()} section"
        for name, value in found.items()
        if not (value or "").strip()
    ]
    if not tests_code and found["tests"] and not any(r.startswith("tests_") for r in reasons):
        reasons.append("no_tests: the Tests section holds no assert")  # prose only
    asserts, imports = _tests(tests_code, question.entry_point, reasons)
    solution = _solution(solution_code, question.entry_point, reasons)
    if reasons or question.prompt is None or question.entry_point is None or solution is None:
        return ParseResult(None, tuple(reasons))
    candidate = Candidate(question.prompt, question.entry_point, asserts, imports, solution)
    return ParseResult(candidate, notes=tuple(notes))


def split_sections(text: str) -> dict[str, str]:
    """Section -> its code (the first fenced block under the heading, else the raw text). A
    section given twice keeps its first occurrence."""
    return {name: extract_code(body).strip("\n") for name, body in section_bodies(text).items()}


def section_bodies(text: str) -> dict[str, str]:
    """Section -> the text under its heading, up to the next heading. A section given twice
    keeps its first occurrence."""
    headings = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=False):
        name = SECTIONS[" ".join(heading.group(1).lower().split())]
        out.setdefault(name, text[heading.end() : following.start() if following else len(text)])
    return out


def _preamble(text: str) -> str:
    """The text before the first heading ("" without headings: then nothing is a section)."""
    first = _HEADING.search(text)
    return text[: first.start()] if first else ""


def _content(body: str | None) -> str:
    """A section's text without its fence lines."""
    lines = (body or "").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("```")).strip()


def _fenced(body: str) -> list[str]:
    return [match.group(1) for match in _FENCE.finditer(body)]


def _code(body: str | None) -> str:
    """A Question or Solution section's code: its first fenced block; without one, its text,
    or where prose makes that no Python, the code in it."""
    if body is None:
        return ""
    blocks = _fenced(body)
    if blocks:
        return blocks[0].strip("\n")
    text = body.strip("\n")
    return text if _parses(text) else _code_region(text)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _code_region(text: str) -> str:
    """From the first line that starts code (`def`, `import`, ...) at the left margin, every line
    of it: indented, blank, another top-level definition or import, or closing a bracket."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return text  # no code found: parsed as it is, and its syntax error is the reason
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not (line[0] in " \t)]}" or _CODE_START.match(line)):
            break
        end += 1
    return "\n".join(lines[start:end]).strip("\n")


def _parsed(code: str, section: str, reasons: list[str]) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        reasons.append(f"{section}_syntax_error: {exc.msg} (line {exc.lineno})")
    except (ValueError, RecursionError, MemoryError) as exc:
        reasons.append(f"{section}_syntax_error: {type(exc).__name__}")
    return None


def _question(code: str, reasons: list[str]) -> _Question:
    """The prompt (the text up to the end of the docstring of the one function), its name, and
    its body when the question was given implemented."""
    if not code or (tree := _parsed(code, "question", reasons)) is None:
        return _Question(None, None)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    others = [
        n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.Import | ast.ImportFrom)
    ]
    if len(functions) != 1 or others:
        reasons.append(
            f"question_not_one_function: {len(functions)} function(s) and "
            f"{len(others)} other statement(s) at the top level"
        )
        return _Question(None, None)
    function = functions[0]
    if ast.get_docstring(function) is None:
        reasons.append(f"question_no_docstring: {function.name} has no docstring")
        return _Question(None, function.name)
    lines = code.splitlines()
    prompt = "\n".join(lines[: function.body[0].end_lineno]).rstrip() + "\n"
    implemented = any(not _is_placeholder(stmt) for stmt in function.body[1:])
    return _Question(prompt, function.name, code.rstrip() + "\n" if implemented else None)


def _is_placeholder(stmt: ast.stmt) -> bool:
    """`pass` or `...`: the body a bare signature is allowed to have."""
    if isinstance(stmt, ast.Pass):
        return True
    return isinstance(stmt, ast.Expr) and getattr(stmt.value, "value", None) is Ellipsis


def _tests_code(body: str | None, reasons: list[str]) -> str:
    """The Tests section's code: its fenced blocks together; without one, its text, or where
    prose makes that no Python, its `assert` and `import` statements."""
    if body is None:
        return ""
    blocks = _fenced(body)
    if blocks:
        return "\n".join(block.strip("\n") for block in blocks)
    text = body.strip("\n")
    return text if _parses(text) else _statement_lines(text, reasons)


def _statement_lines(text: str, reasons: list[str]) -> str:
    """The assert statements (each continued over the lines it needs) and import lines of a
    text that mixes them with prose; an assert that never parses is a reason, not skipped."""
    lines, out, index = text.splitlines(), [], 0
    while index < len(lines):
        line = lines[index]
        match = _ASSERT_LINE.match(line)
        if _IMPORT_LINE.match(line):
            out.append(line)
        elif match:
            statement, used = _statement(match.group(1), lines[index + 1 :])
            if statement is None:
                reasons.append(f"tests_syntax_error: line {index + 1}: {line.strip()[:60]}")
            else:
                out.append(statement)
                index += used
        index += 1
    return "\n".join(out)


def _statement(first: str, following: Sequence[str]) -> tuple[str | None, int]:
    """The shortest run of lines from `first` that parses, and how many following lines it
    took; (None, 0) when none does."""
    for used in range(min(len(following), _MAX_STATEMENT_LINES) + 1):
        code = "\n".join([first, *following[:used]])
        if _parses(code):
            return code, used
    return None, 0


def _asserts_out_of(code: str, entry_point: str) -> tuple[str, str]:
    """(the asserts calling `entry_point` at the top level of `code`, or as the whole body of an
    `if __name__ == "__main__":`; the code without them). Nothing taken: ("", code)."""
    if not _parses(code):
        return "", code
    tree, taken, drop = ast.parse(code), [], set()
    for node in tree.body:
        body = node.body if _is_main_guard(node) else [node]  # type: ignore[attr-defined]
        asserts = [n for n in body if isinstance(n, ast.Assert) and _calls(n, entry_point)]
        if asserts and len(asserts) == len(body):
            taken += [ast.unparse(n) for n in asserts]
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if not taken:
        return "", code
    kept = [line for number, line in enumerate(code.splitlines(), 1) if number not in drop]
    return "\n".join(taken), "\n".join(kept).rstrip() + "\n"


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and not node.orelse
        and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
    )


def _tests(
    code: str, entry_point: str | None, reasons: list[str]
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


def _solution(code: str, entry_point: str | None, reasons: list[str]) -> str | None:
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

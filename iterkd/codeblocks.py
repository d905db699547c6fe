"""Getting the program out of a model's answer.

`extract_code(text, fences)`: the first fenced block (untagged, or tagged with one of the
language's names), else the text. Used where the answer's shape is iterkd's own (synthesis
sections, translations, the tiny models).

`extract_program(text, prompt, entry_point, fences, finish_reason)`: the program to run for a
question's answer, and how the extraction went (`Extraction.status`). Real chat models wrap code
in prose, give several blocks (usage, the function, tests), repeat the prompt's signature or give
only the body, rely on the prompt's imports and helpers, leave an end-of-turn token in the text,
or stop at max tokens inside a block. For Python it:
  1. cuts the text at an end-of-turn marker (`<|im_end|>`, ...);
  2. takes the first Python (or untagged) block that defines the entry point, else the first
     block that is a bare function body (prompt + body, indented under the prompt's def), else
     code outside the fences that defines it (a fence closed but never opened, prose around
     unfenced code), else the unfenced text as a bare body. Code that does not parse (cut off
     at max tokens, or followed by junk) keeps its longest head of whole top-level statements;
  3. leaves out the top-level statements that only exercise the code (example calls, prints,
     asserts, `if __name__ == "__main__":`), keeping what the functions use;
  4. puts before it what the prompt provides and the code lacks: the helpers the prompt defines
     before the entry point (the tests may call them) and the imports the code uses.
Other languages keep `extract_code`'s choice, with a status.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from typing import Literal

PYTHON_FENCES = ("python3", "python", "py")

ExtractionStatus = Literal[
    "ok", "no_code", "no_entry_point", "syntax_error", "truncated", "skipped"
]
# every status, ok first then the failures: the order reports list them in
EXTRACTION_STATUSES: tuple[ExtractionStatus, ...] = (
    "ok", "no_code", "no_entry_point", "syntax_error", "truncated", "skipped",
)  # fmt: skip
Source = Literal["block", "body", "text", "none"]

# End-of-turn markers that reach the text when a server does not strip special tokens; what
# follows one is the model talking past its turn.
END_OF_TURN = (
    "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|im_start|>",
    "<|EOT|>", "<\uff5cend\u2581of\u2581sentence\uff5c>",  # DeepSeek's, in full-width bars
)  # fmt: skip
# Calls that only exercise or report: a top-level statement making one is left out.
_SCRIPT_CALLS = frozenset({"print", "input", "exit", "quit", "breakpoint"})
_SCRIPT_ATTRIBUTE_CALLS = frozenset({("unittest", "main"), ("doctest", "testmod"),
                                     ("pytest", "main"), ("sys", "exit")})  # fmt: skip


@dataclass(frozen=True)
class Extraction:
    """The program to run (`code`, empty when there is none) and how it was found.

    status: ok (a program that parses and defines the entry point), no_code (nothing that looks
    like code), no_entry_point (code, but nothing defines the entry point), syntax_error (the
    code does not parse), truncated (cut at max tokens before the entry point was complete),
    skipped (the prompt did not fit the context: no answer). On a failure `code` is still the
    best candidate (so the tests and analyzers report on it), except for no_code and skipped.
    """

    code: str
    status: ExtractionStatus
    source: Source = "none"  # block, body (prompt + a bare body), text (no fence), none
    blocks: int = 0  # fenced blocks in the reply, any language
    dropped: int = 0  # top-level statements left out (example calls, prints, asserts)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ------------------------------------------------------------------ fenced blocks
@dataclass(frozen=True)
class Block:
    tag: str  # the fence's language tag, lower case; "" when untagged
    code: str  # dedented
    closed: bool  # False: the reply ended inside the block
    lines: tuple[int, int] = (0, 0)  # the reply's lines it spans, fences included: [start, end)


_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*\{?\.?([\w+#.-]*)")


def fenced_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown reply, in order. A block is closed by a fence line of the
    same kind, or by a line that ends with the fence (`    return x```): small models do that."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if opening is None or "`" in lines[i][opening.end() :]:  # ```x``` inline: not a block
            i += 1
            continue
        fence, tag = opening.group(1), opening.group(2).lower()
        start = i
        body, closed, i = [], False, i + 1
        while i < len(lines):
            line = lines[i].rstrip()
            i += 1
            if line.lstrip().startswith(fence[:3]) and not line.lstrip().strip(fence[0]):
                closed = True
                break
            if (reopened := _OPEN.match(line)) and reopened.group(2):  # a new block, unclosed
                closed, i = True, i - 1
                break
            if line.endswith(fence[:3]):
                body.append(line.rstrip(fence[0]))
                closed = True
                break
            body.append(lines[i - 1])
        code = textwrap.dedent("\n".join(body) + "\n")
        blocks.append(Block(tag, code, closed, (start, i)))
    return blocks


def outside_blocks(text: str, blocks: list[Block]) -> list[str]:
    """The runs of lines of `text` outside every fenced block: prose, or code a reply left
    unfenced (a small model may close a fence it never opened)."""
    inside = {k for b in blocks for k in range(*b.lines)}
    runs: list[list[str]] = [[]]
    for k, line in enumerate(text.splitlines()):
        if k in inside:
            runs.append([])
        else:
            runs[-1].append(line)
    return [textwrap.dedent("\n".join(run) + "\n") for run in runs if "".join(run).strip()]


def cut_end_of_turn(text: str) -> str:
    """`text` up to its first end-of-turn marker."""
    cuts = [text.find(marker) for marker in END_OF_TURN]
    first = min((c for c in cuts if c >= 0), default=-1)
    return text if first < 0 else text[:first]


# ------------------------------------------------------------------ first block (any language)
def extract_code(text: str, fences: tuple[str, ...] = PYTHON_FENCES) -> str:
    block = _first_of(fenced_blocks(text), fences)
    return block.code if block is not None else text


def _first_of(blocks: list[Block], fences: tuple[str, ...]) -> Block | None:
    """The first block tagged with one of `fences` (any case), or untagged."""
    tags = {t.lower() for t in fences} | {""}
    return next((b for b in blocks if b.tag in tags), None)


def _first_block(text: str, fences: tuple[str, ...], finish_reason: str) -> Extraction:
    """Another language: `extract_code`'s choice, with a status (no parser to judge the code)."""
    text = cut_end_of_turn(text)
    blocks = fenced_blocks(text)
    if not text.strip():
        return Extraction("", "no_code", blocks=len(blocks))
    block = _first_of(blocks, fences)
    if block is None:
        return Extraction(text, "ok", "text", len(blocks))
    cut = not block.closed and finish_reason == "length"
    return Extraction(block.code, "truncated" if cut else "ok", "block", len(blocks))


# ------------------------------------------------------------------ the program (Python)
def extract_program(
    text: str,
    prompt: str,
    entry_point: str,
    fences: tuple[str, ...] = PYTHON_FENCES,
    finish_reason: str = "stop",
) -> Extraction:
    """The program to run for an answer to a question with `prompt` and `entry_point` (see the
    module's docstring). `finish_reason` "length" tells that the reply hit max tokens."""
    if finish_reason == "skipped":
        return Extraction("", "skipped")
    if not _is_python(fences):
        return _first_block(text, fences, finish_reason)
    text = cut_end_of_turn(text)
    blocks = fenced_blocks(text)
    if not text.strip():
        return Extraction("", "no_code", blocks=len(blocks))
    tags = {t.lower() for t in fences} | {""}
    python = [b for b in blocks if b.tag in tags]
    found = _choose(python, text, blocks, prompt, entry_point)
    if found is None:
        return _failure(python, text, blocks, prompt, entry_point, finish_reason)
    program, source = found
    code, dropped = _without_script(program)
    code = _with_prompt_context(code, prompt, entry_point).rstrip() + "\n"
    return Extraction(code, "ok", source, len(blocks), dropped)


def _is_python(fences: tuple[str, ...]) -> bool:
    return any(t.lower() in ("python", "python3", "py") for t in fences)


def _choose(
    python: list[Block], text: str, blocks: list[Block], prompt: str, entry_point: str
) -> tuple[str, Source] | None:
    """(program, where it came from) for the first usable candidate, or None."""
    for block in python:
        code = _code_in(block.code, entry_point)
        if code is not None:
            return code, "block"
    for block in python:
        program = _as_body(block.code, prompt, entry_point)
        if program is not None:
            return program, "body"
    for part in outside_blocks(text, blocks) if blocks else [text]:
        code = _code_in(part, entry_point)
        if code is not None:
            return code, "text"
    program = _as_body(text, prompt, entry_point) if not blocks else None
    return (program, "body") if program is not None else None


def _failure(
    python: list[Block],
    text: str,
    blocks: list[Block],
    prompt: str,
    entry_point: str,
    finish_reason: str,
) -> Extraction:
    """Why no usable program: the best candidate to run anyway, and the status."""
    count = len(blocks)
    # a block is code by being fenced; unfenced text must look like code to count as some
    candidates: list[tuple[str, bool, Source]] = [
        (b.code, b.closed, "block") for b in python if b.code.strip()
    ]
    outside = outside_blocks(text, blocks) if blocks else [text]
    ends_outside = not blocks or blocks[-1].closed  # the reply's last line is outside a block
    candidates += [
        (part, not (ends_outside and k == len(outside) - 1), "text")
        for k, part in enumerate(outside)
        if _looks_like_code(part)
    ]
    if not candidates:
        return Extraction("", "no_code", blocks=count)
    defining = _defining(entry_point)
    ranked = sorted(
        candidates, key=lambda c: (not defining.search(c[0]), not _looks_like_code(c[0]))
    )
    code, closed, source = ranked[0]
    runnable = _with_prompt_context(code, prompt, entry_point)
    if _parses(code) and not defining.search(code):
        return Extraction(runnable, "no_entry_point", source, count)
    status: ExtractionStatus = (
        "truncated" if finish_reason == "length" and not closed else "syntax_error"
    )
    if status == "syntax_error" and _parses(code):  # `def f` only nested (a class, a def)
        status = "no_entry_point"
    return Extraction(runnable, status, source, count)


_CODE_LINE = re.compile(
    r"^\s*(?:def |async def |class |import |from \S+ import |return\b|for .*:\s*$|"
    r"if .*:\s*$|while .*:\s*$|[A-Za-z_]\w*\s*=[^=])",
    re.MULTILINE,
)


def _looks_like_code(code: str) -> bool:
    return bool(code.strip()) and _CODE_LINE.search(code) is not None


# ------------------------------------------------------------------ parsing helpers
def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _parses(code: str) -> bool:
    return _parse(code) is not None


_STATEMENT_START = re.compile(r"^[A-Za-z_@]")


def _longest_parsing_head(code: str) -> str | None:
    """`code` if it parses; else its longest head ending before a top-level statement that
    parses (a reply cut at max tokens in its example, or a function followed by junk), so every
    statement kept is whole. None: no head parses."""
    lines = code.splitlines(keepends=True)
    starts = [k for k, line in enumerate(lines) if k and _STATEMENT_START.match(line)]
    head, limit = code, len(lines)
    while head.strip():
        try:
            ast.parse(head)
            return head
        except SyntaxError as exc:  # the error's line bounds the head: cut before it
            bad = (exc.lineno or limit) - 1
        except (ValueError, RecursionError, MemoryError):
            bad = limit - 1
        limit = max((k for k in starts if k <= bad and k < limit), default=0)
        head = "".join(lines[:limit])
    return None


_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")


def _code_in(part: str, entry_point: str) -> str | None:
    """The first stretch of `part` that parses and defines `entry_point`: from its start, else
    from a later line that starts a def, a class or an import (prose before unfenced code)."""
    if not _defining(entry_point).search(part):
        return None
    lines = part.splitlines(keepends=True)
    start = 0
    while start < len(lines):
        code = _longest_parsing_head("".join(lines[start:]))
        if code is not None and _defines(code, entry_point):
            return code
        # what parsed stopped short of the entry point: start again after it
        after = start + (len(code.splitlines()) if code is not None else 0)
        later = (k for k in range(max(after, start + 1), len(lines)) if _CODE_START.match(lines[k]))
        start = next(later, len(lines))
    return None


def _defining(entry_point: str) -> re.Pattern[str]:
    """A line that starts the entry point's def (at any indentation)."""
    return re.compile(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.M)


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (defs, classes, imports, assignments)."""
    names: set[str] = set()
    for node in tree.body:
        names |= _bound_names(node)
    return names


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _defines(code: str, entry_point: str) -> bool:
    tree = _parse(code)
    return tree is not None and any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == entry_point
        for n in tree.body
    )


def _entry_def(tree: ast.Module, entry_point: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            return node
    return None


# ------------------------------------------------------------------ a bare body
def _as_body(code: str, prompt: str, entry_point: str) -> str | None:
    """The prompt with `code` as its entry point's body, if `code` is a bare body (it returns
    or yields at its top level and defines nothing of that name) and the result parses."""
    tree = _parse(prompt)
    entry = _entry_def(tree, entry_point) if tree is not None else None
    body = textwrap.dedent(code).strip("\n")
    if entry is None or not body or _defines(body, entry_point):
        return None
    wrapped = _parse("def _body():\n" + textwrap.indent(body, "    ") + "\n")
    if wrapped is None or not _returns(wrapped.body[0]):
        return None
    indent = " " * (entry.body[0].col_offset if entry.body else entry.col_offset + 4)
    lines = prompt.splitlines(keepends=True)
    head = "".join(lines[: entry.end_lineno])  # the prompt through its entry point's def
    head = head if head.endswith("\n") else head + "\n"
    program = head + textwrap.indent(body, indent) + "\n"
    return program if _defines(program, entry_point) else None


def _returns(function: ast.stmt) -> bool:
    """A return or yield in `function` itself, not in a def or class nested in it."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return False


# ------------------------------------------------------------------ script statements
def _without_script(code: str) -> tuple[str, int]:
    """`code` without the top-level statements that only exercise it: an `if __name__ ==
    "__main__":` block, and any statement that calls the code's own functions or prints,
    reads input or exits, unless it binds a name the code's functions use. Line ranges are cut,
    so comments and formatting of what stays are kept. (code, statements left out)"""
    tree = _parse(code)
    if tree is None:
        return code, 0
    defined = {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    used_by_defs = {
        name.id
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for name in ast.walk(n)
        if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load)
    }
    drop = [n for n in tree.body if _is_script(n, defined, used_by_defs)]
    if not drop:
        return code, 0
    lines = code.splitlines(keepends=True)
    cut = {k for n in drop for k in range(_first_line(n) - 1, n.end_lineno or n.lineno)}
    kept = "".join(line for k, line in enumerate(lines) if k not in cut)
    return kept.rstrip("\n") + "\n", len(drop)


def _is_script(node: ast.stmt, defined: set[str], used_by_defs: set[str]) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False
    if isinstance(node, ast.Import | ast.ImportFrom):
        return False
    if _is_main_guard(node):
        return True
    if _bound_names(node) & used_by_defs:
        return False
    return any(_is_script_call(call, defined) for call in ast.walk(node))


def _is_script_call(node: ast.AST, defined: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in defined or func.id in _SCRIPT_CALLS
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return (func.value.id, func.attr) in _SCRIPT_ATTRIBUTE_CALLS
    return False


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


# ------------------------------------------------------------------ what the prompt provides
def _with_prompt_context(code: str, prompt: str, entry_point: str) -> str:
    """`code` after what the prompt gives before its entry point's def and `code` lacks: every
    helper it defines (HumanEval/38's tests call `encode_cyclic`), and the imports that `code`
    or those helpers use (`from typing import List` for a signature that kept `List`)."""
    tree, prompt_tree = _parse(code), _parse(prompt)
    if prompt_tree is None or _entry_def(prompt_tree, entry_point) is None:
        return code
    have = _top_level_names(tree) if tree is not None else set()
    before = prompt_tree.body[: prompt_tree.body.index(_entry_def(prompt_tree, entry_point))]
    helpers = [
        n
        for n in before
        if not isinstance(n, ast.Import | ast.ImportFrom) and not (_bound_names(n) & have)
    ]
    used = _loaded_names(tree) | {
        name for helper in helpers for name in _loaded_names(ast.Module([helper], []))
    }
    imports = [i for n in before if (i := _needed_import(n, used - have)) is not None]
    if not imports and not helpers:
        return code
    parts = ["\n".join(imports)] if imports else []
    parts += [_segment(prompt, n) for n in helpers]
    return _insert_header(code, tree, "\n\n\n".join(parts) + "\n\n\n")


def _segment(source: str, node: ast.stmt) -> str:
    """The source lines of a top-level statement, decorators included."""
    lines = source.splitlines()
    return "\n".join(lines[_first_line(node) - 1 : node.end_lineno or node.lineno])


def _loaded_names(tree: ast.Module | None) -> set[str]:
    if tree is None:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _needed_import(node: ast.stmt, missing: set[str]) -> str | None:
    """The part of the prompt's import statement `node` that binds names in `missing`."""
    if not isinstance(node, ast.Import | ast.ImportFrom):
        return None
    aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] in missing]
    if not aliases:
        return None
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=aliases))
    return ast.unparse(ast.ImportFrom(module=node.module, names=aliases, level=node.level))


def _insert_header(code: str, tree: ast.Module | None, header: str) -> str:
    """`header` before `code`, after its `from __future__` imports, which must come first."""
    future = [
        n
        for n in (tree.body if tree else [])
        if isinstance(n, ast.ImportFrom) and n.module == "__future__"
    ]
    if not future:
        return header + code
    lines = code.splitlines(keepends=True)
    split = max(n.end_lineno or n.lineno for n in future)
    return "".join(lines[:split]) + header + "".join(lines[split:])

"""A Python prompt (signature + docstring) in another language, as MultiPL-E does it: the
docstring becomes comments, its doctest examples are translated (or dropped when they cannot
be), and the signature becomes the target's own function header."""

from __future__ import annotations

import ast

from iterkd.execution.languages.spec import Language, PromptParts, TranslatedSuite
from iterkd.execution.languages.types import Untranslatable, VType, type_of, unify


def localize_prompt(prompt: str, suite: TranslatedSuite, language: Language) -> str:
    return language.prompt(prompt_parts(prompt, suite, language))


def prompt_parts(prompt: str, suite: TranslatedSuite, language: Language) -> PromptParts:
    function = _function(prompt, suite.entry_point)
    if function is None:  # not HumanEval style: the whole prompt is the description
        params = tuple(f"arg{i + 1}" for i in range(len(suite.arg_types)))
        doc = prompt.strip()
    else:
        params = tuple(a.arg for a in function.args.args)
        doc = ast.get_docstring(function) or ""
    if len(params) != len(suite.arg_types):
        params = tuple(f"arg{i + 1}" for i in range(len(suite.arg_types)))
    params = tuple(p + "_" if p in language.keywords else p for p in params)
    return PromptParts(
        name=suite.entry_point,
        params=params,
        doc_lines=tuple(_doc_lines(doc, suite, language)),
        arg_types=suite.arg_types,
        return_type=suite.return_type,
    )


def _function(prompt: str, entry_point: str) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(prompt + ("\n    ..." if prompt.rstrip().endswith('"""') else ""))
    except SyntaxError:
        return None
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return next((f for f in functions if f.name == entry_point), None)


def _doc_lines(doc: str, suite: TranslatedSuite, language: Language) -> list[str]:
    """Docstring lines; a `>>> call` example and its output lines translated, or both dropped."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line.rstrip())
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith(">>>"):
            j += 1
        out += _example(line.lstrip()[3:].strip(), lines[i + 1 : j], suite, language)
        i = j
    while out and not out[-1]:
        out.pop()
    return out


def _example(call: str, outputs: list[str], suite: TranslatedSuite, language: Language) -> list:
    try:
        node = ast.parse(call, mode="eval").body
        if not isinstance(node, ast.Call) or getattr(node.func, "id", None) != suite.entry_point:
            return []
        args = [ast.literal_eval(a) for a in node.args]
        if node.keywords or len(args) != len(suite.arg_types):
            return []
        rendered = [_literal(v, t, language) for v, t in zip(args, suite.arg_types, strict=True)]
        shown = [f">>> {language.call(suite.entry_point, rendered)}"]
        if outputs:
            value = ast.literal_eval(" ".join(o.strip() for o in outputs))
            shown.append(_literal(value, suite.return_type, language))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, Untranslatable):
        return []
    return shown


def _literal(value: object, vtype: VType, language: Language) -> str:
    unify(vtype, type_of(value))  # an example of another type than the tests': not shown
    language.check_value(value)
    return language.literal(value, vtype)

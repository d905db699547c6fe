"""Structured fill-in-the-middle (SFIM, after aiXcoder-7B): training texts whose masked middle is a
whole syntax structure of a correct solution, never a random character span.

A solution is cut into three parts at line boundaries, `prefix + middle + suffix == code` exactly:
the middle is one statement (at any depth: a compound statement with its whole body, a function or
class with its decorators) or a run of 2 to `MAX_RUN` sibling statements of one body, taken as
whole lines (from the start of its first line to the end of its last line, newline included).
The model sees the context and learns to write the middle, then eos (the caller appends it):

    PSM: <fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>  ->  {middle}
    SPM: <fim_suffix>{suffix}<fim_prefix>{prefix}<fim_middle>  ->  {middle}

The sentinels are StarCoder's; `ensure_fim_tokens` adds any the tokenizer lacks as special tokens
(one id each) and grows the model's embeddings to match. Everything here is a pure function of its
inputs and the seeds (no torch import; the tokenizer and model are only called through).
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from iterkd.config import TrainConfig

FimMode = Literal["psm", "spm"]
MAX_RUN = 4  # longest run of sibling statements masked together: keeps the candidate list small
# Where Python's tokenizer ends a line. Not str.splitlines: it also splits on \x0c, \x0b, \x1c-\x1e,
# \x85, \u2028 and \u2029, which Python allows inside strings (and \x0c as whitespace), so its
# line numbers would drift from `ast`'s.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class FimTokens:
    """The three sentinel strings (StarCoder's names by default)."""

    prefix: str = "<fim_prefix>"
    middle: str = "<fim_middle>"
    suffix: str = "<fim_suffix>"

    def as_list(self) -> list[str]:
        return [self.prefix, self.middle, self.suffix]


@dataclass(frozen=True)
class FimSplit:
    """`prefix + middle + suffix` is the source; `node` names the masked structure: the ast class
    of a statement ("If", "FunctionDef") or of each statement of a run ("Assign+Return")."""

    prefix: str
    middle: str
    suffix: str
    node: str


@dataclass(frozen=True)
class _Candidate:
    first_line: int  # 1-based, as in ast
    last_line: int
    node: str


# ---------------------------------------------------------------- splitting
def split_source(code: str, rng: random.Random) -> FimSplit | None:
    """One structure of `code`, chosen uniformly among the candidates that are whole structures,
    cut out as whole lines; None when `code` does not parse or has no statement."""
    tree = _parse(code)
    if tree is None:
        return None
    starts = _line_starts(code)
    pool = list(_candidates(tree))
    # Rejection sampling: uniform over the valid candidates, and validates one or a few of them
    # rather than all. A candidate is invalid when its lines hold more than whole statements,
    # e.g. `else: x = 1` (a clause header sharing the line), which a model could not learn from.
    while pool:
        index = rng.randrange(len(pool))
        split = _cut(code, starts, pool[index])
        if _is_whole_structure(split.middle):
            return split
        pool[index] = pool[-1]  # order-changing removal is fine: the rng draws stay deterministic
        pool.pop()
    return None


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: null bytes on older Pythons
        return None


def _line_starts(code: str) -> list[int]:
    """Offset of each line's first character, by the line breaks `ast` counts; one extra entry,
    len(code), so that "the start of the line after the last" needs no special case."""
    starts = [0] + [match.end() for match in _LINE_BREAK.finditer(code)]
    if starts[-1] != len(code):  # no break at the very end: the last line is unterminated
        starts.append(len(code))
    return starts


def _candidates(tree: ast.Module) -> Iterator[_Candidate]:
    """Every statement and every run of 2..MAX_RUN adjacent siblings, in a fixed order (ast.walk's)
    so that one rng draw always picks the same candidate."""
    for body in _bodies(tree):
        for i in range(len(body)):
            for j in range(i, min(i + MAX_RUN, len(body))):
                run = body[i : j + 1]
                yield _Candidate(
                    first_line=_first_line(run[0]),
                    last_line=run[-1].end_lineno or run[-1].lineno,
                    node="+".join(type(stmt).__name__ for stmt in run),
                )


def _bodies(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    """Every list of statements (body, orelse, finalbody, handler and case bodies...): each
    statement is in exactly one, so its singles cover every statement once."""
    for node in ast.walk(tree):
        for _, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value


def _first_line(stmt: ast.stmt) -> int:
    """A definition starts at its first decorator: the line numbers of a def or class are those of
    the `def` / `class` keyword."""
    decorators = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(decorator.lineno for decorator in decorators)])


def _cut(code: str, starts: list[int], candidate: _Candidate) -> FimSplit:
    begin = starts[candidate.first_line - 1]
    end = starts[candidate.last_line]  # the start of the next line: the newline stays in the middle
    return FimSplit(
        prefix=code[:begin], middle=code[begin:end], suffix=code[end:], node=candidate.node
    )


def _is_whole_structure(middle: str) -> bool:
    """Whether the lines parse on their own: as they are (top level), or as the body of a block
    (an indented run). Compile-time checks (`return` outside a function) are not parse errors."""
    return _parse(middle) is not None or _parse("if 1:\n" + middle) is not None


# ---------------------------------------------------------------- formatting
def format_fim(split: FimSplit, tokens: FimTokens, mode: FimMode) -> tuple[str, str]:
    """(context, target): the loss is taken on the target only, to which the caller appends eos."""
    if mode == "psm":
        context = tokens.prefix + split.prefix + tokens.suffix + split.suffix + tokens.middle
    elif mode == "spm":
        context = tokens.suffix + split.suffix + tokens.prefix + split.prefix + tokens.middle
    else:
        raise ValueError(f"unknown FIM mode {mode!r} (psm or spm)")
    return context, split.middle


def choose_mode(rng: random.Random, spm_share: float) -> FimMode:
    """SPM with probability `spm_share` (0: always PSM, 1: always SPM)."""
    if not 0.0 <= spm_share <= 1.0:
        raise ValueError(f"spm_share must be within [0, 1], got {spm_share}")
    return "spm" if rng.random() < spm_share else "psm"


# ---------------------------------------------------------------- rows
def sfim_rows(
    sources: Sequence[tuple[str, str]], ratio: float, seed: int
) -> list[tuple[str, FimSplit]]:
    """(sample_id, split) rows for about `ratio * len(sources)` of the (sample_id, code) sources.

    n = round(ratio * len(sources)) rows are wanted: n // len(sources) whole passes over the
    sources, then one partial pass over the n % len(sources) sources a seeded hash ranks first
    (ratio 2: every source twice, with different splits; ratio 0.5: half of them once). Each row's split has its own rng, seeded by
    (seed, sample_id, pass), so one source's rows never depend on the others (sample ids should be
    unique). Sources that do not parse or have no statement give no row, so fewer rows may come.
    """
    if not ratio >= 0.0:  # also rejects NaN
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    if not sources:
        return []
    passes, rest = divmod(round(ratio * len(sources)), len(sources))
    partial = _ranked_first(sources, rest, seed)
    rows = []
    for k in range(passes + (1 if rest else 0)):
        for sample_id, code in sources:
            if k < passes or sample_id in partial:
                split = split_source(code, random.Random(f"{seed}:{sample_id}:{k}"))
                if split is not None:
                    rows.append((sample_id, split))
    return rows


def _ranked_first(sources: Sequence[tuple[str, str]], count: int, seed: int) -> set[str]:
    """The `count` sample ids ranked first by a hash of (seed, id): adding a source can only take
    one place in the selection, never reshuffle it."""

    def rank(sample_id: str) -> str:
        return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()

    return set(sorted((sample_id for sample_id, _ in sources), key=rank)[:count])


# ---------------------------------------------------------------- tokenizer and model
def ensure_fim_tokens(tokenizer: Any, model: Any, tokens: FimTokens) -> list[str]:
    """Add the sentinels the tokenizer does not know as single tokens, as special tokens, and grow
    `model`'s embeddings (when given) to the tokenizer's size. Returns the tokens added; a second
    call adds nothing."""
    missing = missing_fim_tokens(tokenizer, tokens)
    if not missing:
        return []
    # transformers 5: the key is "extra_special_tokens", and the default
    # replace_extra_special_tokens=True would demote the tokenizer's earlier extra special tokens
    # to plain added tokens (then skip_special_tokens no longer drops them).
    tokenizer.add_special_tokens(
        {"extra_special_tokens": missing}, replace_extra_special_tokens=False
    )
    failed = [token for token in missing if not is_single_token(tokenizer, token)]
    if failed:
        raise ValueError(f"the tokenizer still splits {failed} after adding them")
    if model is not None:
        grow_embeddings(model, len(tokenizer))
    return missing


def fim_tokens(cfg: TrainConfig) -> FimTokens:
    """The sentinels `train.fim_tokens` names."""
    names = cfg.fim_tokens
    return FimTokens(names.prefix, names.middle, names.suffix)


def needs_new_fim_tokens(tokenizer: Any, cfg: TrainConfig) -> list[str]:
    """The sentinels SFIM would have to add to this tokenizer (none when SFIM is off)."""
    return missing_fim_tokens(tokenizer, fim_tokens(cfg)) if cfg.sfim_ratio > 0 else []


def missing_fim_tokens(tokenizer: Any, tokens: FimTokens) -> list[str]:
    """The sentinels this tokenizer does not know as single tokens."""
    return [token for token in tokens.as_list() if not is_single_token(tokenizer, token)]


def is_single_token(tokenizer: Any, token: str) -> bool:
    """Known (an id other than unk) and encoded as exactly that id: a vocabulary entry that the
    pre-tokenizer splits would still reach the model as several tokens."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return False
    return tokenizer.encode(token, add_special_tokens=False) == [token_id]


def grow_embeddings(model: Any, size: int) -> None:
    """Resize only to grow: many checkpoints pad their embeddings past the tokenizer's length
    (to a multiple of 64 or 128), and the added ids may already have rows there. New rows start
    at the mean of the old ones (mean_resizing), which keeps the model's next-token distribution
    nearly unchanged until training moves them."""
    if size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(size, mean_resizing=True)

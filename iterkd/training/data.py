"""What the student is trained on, as pure functions of the round's records (no I/O, no torch).

- SFT rows: teacher answers whose verdict passed, one per distinct program (same normalised code)
  per question, at most `max_rows_per_question`, complete answers first, then by sample index.
- Contrastive pairs: (chosen, rejected) = (an SFT row, a student answer that failed its tests) of
  the same question. The chosen side is always one of the question's SFT rows, so every pair's
  chosen answer is also trained on by NLL (the anchor that keeps a reference-free margin loss from
  lowering both sides) without counting it twice.
- Encoding: the question's solve prompt rendered with the student tokenizer's chat template, then
  the answer's text and the eos token; labels are -100 on the prompt (loss on the answer only);
  a sequence longer than `max_length` loses the end of its answer.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import product
from typing import Any

from iterkd.records import SampleRecord

IGNORE_INDEX = -100  # labels the loss skips (torch's cross-entropy default)

Pair = tuple[SampleRecord, SampleRecord]  # (chosen: teacher-correct, rejected: student-fault)
Example = dict[str, Any]  # {"sft": Encoded} or {"chosen": Encoded, "rejected": Encoded}


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def completion_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)

    def as_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels}


@dataclass
class EncodeStats:
    """What encoding did to the selected data: nothing is dropped without being counted."""

    sft_rows: int = 0
    pairs: int = 0
    truncated: int = 0  # sequences whose answer was cut at max_length
    dropped_too_long: int = 0  # rows or pairs with no (distinct) answer token left in max_length
    completion_tokens: int = 0
    questions_with_rows: set[str] = field(default_factory=set)
    questions_with_pairs: set[str] = field(default_factory=set)


# ------------------------------------------------------------------ selection
def normalise_code(code: str) -> str:
    """Formatting and comments do not make a different program: the AST, unparsed. Code that
    does not parse is compared by its non-blank lines, right-stripped."""
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError):
        return "\n".join(line.rstrip() for line in code.splitlines() if line.strip())


def _by_question(samples: Sequence[SampleRecord]) -> dict[str, list[SampleRecord]]:
    """Samples grouped by question, questions in order of first appearance."""
    groups: dict[str, list[SampleRecord]] = {}
    for sample in samples:
        groups.setdefault(sample.question_id, []).append(sample)
    return groups


def _distinct(samples: Sequence[SampleRecord]) -> list[SampleRecord]:
    """One sample per normalised program: complete answers (`stop`) first, then lowest index."""
    ordered = sorted(samples, key=lambda s: (s.finish_reason != "stop", s.index))
    seen: set[str] = set()
    out: list[SampleRecord] = []
    for sample in ordered:
        key = normalise_code(sample.code)
        if key not in seen:
            seen.add(key)
            out.append(sample)
    return out


def select_sft_rows(
    teacher: Sequence[SampleRecord], passed: Mapping[str, bool], max_per_question: int
) -> list[SampleRecord]:
    """Teacher answers whose verdict passed, deduplicated and capped per question."""
    correct = [s for s in teacher if passed.get(s.id) is True and s.text]
    rows: list[SampleRecord] = []
    for group in _by_question(correct).values():
        rows += _distinct(group)[:max_per_question]
    return rows


def select_pairs(
    rows: Sequence[SampleRecord],
    student: Sequence[SampleRecord],
    passed: Mapping[str, bool],
    max_per_question: int,
) -> list[Pair]:
    """(SFT row, student fault) pairs of the same question, capped per question. A sample
    without a verdict is neither; a fault whose program equals a chosen one is no contrast."""
    faults = _by_question([s for s in student if passed.get(s.id) is False and s.text])
    pairs: list[Pair] = []
    for question_id, chosen in _by_question(rows).items():
        correct_code = {normalise_code(s.code) for s in chosen}
        rejected = [
            s
            for s in _distinct(faults.get(question_id, []))
            if normalise_code(s.code) not in correct_code
        ]
        order = sorted(product(range(len(chosen)), range(len(rejected))), key=_shell_order)
        pairs += [(chosen[i], rejected[j]) for i, j in order[:max_per_question]]
    return pairs


def _shell_order(ij: tuple[int, int]) -> tuple[int, int, int]:
    """Pairs of the first k chosen x k rejected before any larger index: a small cap still
    spreads over several chosen and several rejected answers."""
    return (max(ij), ij[0], ij[1])


# ------------------------------------------------------------------ encoding
def encode(
    prompt_ids: Sequence[int], completion_ids: Sequence[int], max_length: int
) -> Encoded | None:
    """prompt + completion, labels only on the completion; None if no completion token fits."""
    room = max_length - len(prompt_ids)
    if room <= 0 or not completion_ids:
        return None
    kept = list(completion_ids[:room])
    return Encoded(
        input_ids=[*prompt_ids, *kept],
        labels=[IGNORE_INDEX] * len(prompt_ids) + kept,
        truncated=len(kept) < len(completion_ids),
    )


def completion_token_ids(tokenizer: Any, text: str) -> list[int]:
    """The answer as the student would have generated it: its tokens, then eos."""
    return [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


def build_examples(
    tokenizer: Any,
    prompts: Mapping[str, str],
    rows: Sequence[SampleRecord],
    pairs: Sequence[Pair],
    max_length: int,
) -> tuple[list[Example], EncodeStats]:
    """The training examples: one per SFT row and one per pair, in the given order. `prompts`
    maps question id -> rendered prompt text (the chat template already applied)."""
    by_id = {s.id: s for s in [*rows, *(s for pair in pairs for s in pair)]}

    @cache  # each prompt (and answer) is tokenized once, however many examples share it
    def prompt_ids(question_id: str) -> tuple[int, ...]:
        return tuple(tokenizer(prompts[question_id], add_special_tokens=False)["input_ids"])

    @cache
    def encoded(sample_id: str) -> Encoded | None:
        sample = by_id[sample_id]
        answer = completion_token_ids(tokenizer, sample.text)
        return encode(prompt_ids(sample.question_id), answer, max_length)

    stats = EncodeStats()
    examples: list[Example] = []
    for row in rows:
        if (sft := encoded(row.id)) is None:
            stats.dropped_too_long += 1
            continue
        examples.append({"sft": sft.as_dict()})
        _count(stats, row.question_id, [sft], pair=False)
    for chosen, rejected in pairs:
        sides = encoded(chosen.id), encoded(rejected.id)
        # cut at max_length, two answers can become the same tokens: no contrast is left
        if sides[0] is None or sides[1] is None or sides[0].input_ids == sides[1].input_ids:
            stats.dropped_too_long += 1
            continue
        examples.append({"chosen": sides[0].as_dict(), "rejected": sides[1].as_dict()})
        _count(stats, chosen.question_id, list(sides), pair=True)
    return examples, stats


def _count(stats: EncodeStats, question_id: str, sequences: list[Encoded], *, pair: bool) -> None:
    stats.truncated += sum(s.truncated for s in sequences)
    stats.completion_tokens += sum(s.completion_tokens for s in sequences)
    if pair:
        stats.pairs += 1
        stats.questions_with_pairs.add(question_id)
    else:
        stats.sft_rows += 1
        stats.questions_with_rows.add(question_id)

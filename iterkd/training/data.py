"""What the student is trained on, as pure functions of the round's records (no I/O, no torch).

- SFT rows: teacher answers whose verdict passed, one per distinct program (same normalised code)
  per question, at most `max_rows_per_question`, complete answers first, then by sample index.
- Row weights (optional): an SFT row's NLL weighs `floor + (1 - floor) * score`, the score being
  the mean of its ruff and pylint scores in [0, 1] (1 when the analyzers gave none).
- Contrastive pairs: (chosen, rejected) = (an SFT row, a student answer that failed its tests) of
  the same question. The chosen side is always one of the question's SFT rows, so every pair's
  chosen answer is also trained on by NLL (the anchor that keeps a reference-free margin loss from
  lowering both sides) without counting it twice. The faults of a question come in index order,
  or hardest first (`rank`: the round-start student's mean log-prob of each, highest first);
  pairs spread over the first k chosen x k rejected before any later one. InfoNCE groups hold one
  chosen answer and several faults.
- SFIM rows (`iterkd.training.sfim`): a chosen answer's code split at whole syntax structures,
  formatted PSM or SPM with sentinel tokens; the loss is on the middle and eos.
- Encoding: the question's solve prompt rendered with the student tokenizer's chat template, then
  the answer's text and the eos token; labels are -100 on the prompt (loss on the answer only);
  a sequence longer than `max_length` loses the end of its answer.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from iterkd.records import SampleRecord, VerdictRecord

IGNORE_INDEX = -100  # labels the loss skips (torch's cross-entropy default)

Pair = tuple[SampleRecord, SampleRecord]  # (chosen: teacher-correct, rejected: student-fault)
Group = tuple[SampleRecord, tuple[SampleRecord, ...]]  # (chosen, its negatives); a pair: one
# an example, as the collator reads it (see `ExampleCollator`):
#   {"sft": {input_ids, labels}, "weight": float, "objective": "sft" | "sfim"}
#   {"chosen": {...}, "rejected": [{...}, ...], "ref": [chosen, rejected...] sums or None}
Example = dict[str, Any]


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
    sfim_rows: int = 0
    kd_only_rows: int = 0
    pairs: int = 0  # contrastive examples: pairs, or infonce groups
    negatives: int = 0  # rejected sequences in them
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


def select_kd_rows(
    answers: Sequence[SampleRecord], passed: Mapping[str, bool], max_per_question: int
) -> list[SampleRecord]:
    """Answers not verified correct (failed, or never run), deduplicated and capped per
    question: rows for the KD term only (the text still carries the teacher's distribution)."""
    rest = [s for s in answers if passed.get(s.id) is not True and s.text]
    rows: list[SampleRecord] = []
    for group in _by_question(rest).values():
        rows += _distinct(group)[:max_per_question]
    return rows


def analyzer_scores(verdicts: Sequence[VerdictRecord]) -> dict[str, list[float | None]]:
    """Each sample's analyzer scores (ruff, pylint, another language's linter), 0-10 scaled to
    [0, 1] as `row_weights` takes them; None where an analyzer did not run."""
    return {
        v.sample_id: [
            None if x is None else x / 10.0 for x in (v.ruff_score, v.pylint_score, v.lint_score)
        ]
        for v in verdicts
    }


def row_weights(
    rows: Sequence[SampleRecord], scores: Mapping[str, Sequence[float | None]], floor: float
) -> dict[str, float]:
    """Each row's NLL weight from its analyzer scores (`scores[sample id]`, each in [0, 1] or
    None): `floor + (1 - floor) * mean`; a row no analyzer scored weighs 1."""
    weights = {}
    for row in rows:
        known = [x for x in scores.get(row.id, ()) if x is not None]
        mean = sum(known) / len(known) if known else 1.0
        weights[row.id] = round(floor + (1.0 - floor) * mean, 6)
    return weights


def candidate_faults(
    rows: Sequence[SampleRecord], student: Sequence[SampleRecord], passed: Mapping[str, bool]
) -> dict[str, list[SampleRecord]]:
    """Per question with rows: its distinct failed student answers that are not one of its
    correct programs. A sample without a verdict is neither; an equal program is no contrast."""
    faults = _by_question([s for s in student if passed.get(s.id) is False and s.text])
    out: dict[str, list[SampleRecord]] = {}
    for question_id, chosen in _by_question(rows).items():
        correct_code = {normalise_code(s.code) for s in chosen}
        distinct = _distinct(faults.get(question_id, []))
        out[question_id] = [s for s in distinct if normalise_code(s.code) not in correct_code]
    return out


def _ranked(faults: list[SampleRecord], rank: Mapping[str, float] | None) -> list[SampleRecord]:
    """Hardest first (highest rank; ties by index) when ranked, else as they came. A fault
    without a rank (too long to be scored) comes last."""
    if rank is None:
        return faults
    return sorted(faults, key=lambda s: (-rank.get(s.id, float("-inf")), s.index))


def select_pairs(
    rows: Sequence[SampleRecord],
    faults: Mapping[str, list[SampleRecord]],
    max_per_question: int,
    rank: Mapping[str, float] | None = None,
) -> list[Pair]:
    """(SFT row, fault) pairs of the same question, capped per question; `faults` as
    `candidate_faults` gives them."""
    pairs: list[Pair] = []
    for question_id, chosen in _by_question(rows).items():
        rejected = _ranked(faults.get(question_id, []), rank)
        order = sorted(product(range(len(chosen)), range(len(rejected))), key=_shell_order)
        pairs += [(chosen[i], rejected[j]) for i, j in order[:max_per_question]]
    return pairs


def select_groups(
    rows: Sequence[SampleRecord],
    faults: Mapping[str, list[SampleRecord]],
    max_per_question: int,
    negatives: int,
    rank: Mapping[str, float] | None = None,
) -> list[Group]:
    """InfoNCE groups: per question up to `max_per_question` chosen answers, each with up to
    `negatives` faults; group k's negatives start k places further along the (ranked) faults,
    so several chosen answers see different negatives when there are more than `negatives`.
    `faults` as `candidate_faults` gives them."""
    groups: list[Group] = []
    for question_id, chosen in _by_question(rows).items():
        rejected = _ranked(faults.get(question_id, []), rank)
        if not rejected:
            continue
        take = min(negatives, len(rejected))
        for k, row in enumerate(chosen[:max_per_question]):
            groups.append((row, tuple(rejected[(k + m) % len(rejected)] for m in range(take))))
    return groups


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


class Encoder:
    """Token sequences of answers and SFIM rows, each tokenized once however many examples
    share it. `prompts` maps question id -> rendered prompt text (chat template applied)."""

    def __init__(self, tokenizer: Any, prompts: Mapping[str, str], max_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.max_length = max_length
        self._prompt_ids: dict[str, list[int]] = {}
        self._answers: dict[str, Encoded | None] = {}

    def answer(self, sample: SampleRecord) -> Encoded | None:
        """The question's prompt then the sample's answer and eos; None if nothing fits."""
        if sample.id not in self._answers:
            answer = completion_token_ids(self.tokenizer, sample.text)
            self._answers[sample.id] = encode(
                self._prompt(sample.question_id), answer, self.max_length
            )
        return self._answers[sample.id]

    def fim(self, context: str, middle: str) -> Encoded | None:
        """An SFIM row: the sentinel-formatted context, then the middle and eos."""
        ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
        return encode(ids, completion_token_ids(self.tokenizer, middle), self.max_length)

    def _prompt(self, question_id: str) -> list[int]:
        if question_id not in self._prompt_ids:
            text = self.prompts[question_id]
            self._prompt_ids[question_id] = self.tokenizer(text, add_special_tokens=False)[
                "input_ids"
            ]
        return self._prompt_ids[question_id]


def sft_examples(
    encoder: Encoder,
    rows: Sequence[SampleRecord],
    stats: EncodeStats,
    weights: Mapping[str, float] | None = None,
) -> list[Example]:
    """One NLL example per SFT row (weight 1 unless `weights` says otherwise)."""
    examples: list[Example] = []
    for row in rows:
        if (sft := encoder.answer(row)) is None:
            stats.dropped_too_long += 1
            continue
        weight = 1.0 if weights is None else weights[row.id]
        examples.append({"sft": sft.as_dict(), "weight": weight, "objective": "sft"})
        _count(stats, row.question_id, [sft])
        stats.sft_rows += 1
        stats.questions_with_rows.add(row.question_id)
    return examples


def kd_examples(
    encoder: Encoder, rows: Sequence[SampleRecord], stats: EncodeStats
) -> list[Example]:
    """One KD-only example per row (no NLL: weight 0, objective `kd`)."""
    examples: list[Example] = []
    for row in rows:
        if (encoded := encoder.answer(row)) is None:
            stats.dropped_too_long += 1
            continue
        examples.append({"sft": encoded.as_dict(), "weight": 0.0, "objective": "kd"})
        stats.kd_only_rows += 1
    return examples


def number_kd_rows(examples: list[Example], verified: bool) -> list[dict[str, list[int]]]:
    """Give each example the KD term covers a `kd_row` (the index of its teacher targets): the
    KD-only rows, and the SFT rows when `verified`; returns their sequences in that order."""
    sequences: list[dict[str, list[int]]] = []
    for example in examples:
        if example.get("objective") == "kd" or (verified and example.get("objective") == "sft"):
            example["kd_row"] = len(sequences)
            sequences.append(example["sft"])
    return sequences


def sfim_examples(
    encoder: Encoder,
    items: Sequence[tuple[str, str, str]],
    weight: float,
    stats: EncodeStats,
) -> list[Example]:
    """One NLL example per (question id, context, middle) SFIM item."""
    examples: list[Example] = []
    for question_id, context, middle in items:
        if (row := encoder.fim(context, middle)) is None:
            stats.dropped_too_long += 1
            continue
        examples.append({"sft": row.as_dict(), "weight": weight, "objective": "sfim"})
        _count(stats, question_id, [row])
        stats.sfim_rows += 1
    return examples


def contrast_examples(
    encoder: Encoder,
    groups: Sequence[Group],
    stats: EncodeStats,
    reference: Mapping[str, float] | None = None,
) -> list[Example]:
    """One example per group (a pair is a group of one): chosen, its negatives, and with
    `reference` (sample id -> the round-start student's summed log-prob) their reference sums."""
    examples: list[Example] = []
    for chosen, rejected in groups:
        side = encoder.answer(chosen)
        # cut at max_length, two answers can become the same tokens: no contrast is left
        encoded = [(s, encoder.answer(s)) for s in rejected]
        negatives = [(s, e) for s, e in encoded if e and side and e.input_ids != side.input_ids]
        if side is None or not negatives:
            stats.dropped_too_long += 1
            continue
        ref = None
        if reference is not None:
            ref = [reference[chosen.id], *(reference[s.id] for s, _ in negatives)]
        examples.append(
            {"chosen": side.as_dict(), "rejected": [e.as_dict() for _, e in negatives], "ref": ref}
        )
        _count(stats, chosen.question_id, [side, *(e for _, e in negatives)])
        stats.pairs += 1
        stats.negatives += len(negatives)
        stats.questions_with_pairs.add(chosen.question_id)
    return examples


def build_examples(
    tokenizer: Any,
    prompts: Mapping[str, str],
    rows: Sequence[SampleRecord],
    pairs: Sequence[Pair],
    max_length: int,
) -> tuple[list[Example], EncodeStats]:
    """SFT rows then pairs, unweighted and without a reference: the plain recipe."""
    encoder, stats = Encoder(tokenizer, prompts, max_length), EncodeStats()
    groups = [(chosen, (rejected,)) for chosen, rejected in pairs]
    examples = sft_examples(encoder, rows, stats) + contrast_examples(encoder, groups, stats)
    return examples, stats


def _count(stats: EncodeStats, question_id: str, sequences: list[Encoded]) -> None:
    stats.truncated += sum(s.truncated for s in sequences)
    stats.completion_tokens += sum(s.completion_tokens for s in sequences)

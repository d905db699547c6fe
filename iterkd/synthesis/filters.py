"""Filters of synthesized questions by their text: near-duplicates and contamination (the tests
are checked in `validation.py`, the perplexity band in `perplexity.py`, the judge in `quality.py`).

Near-duplicates: a question is its normalised prompt (lowercased, whitespace collapsed) cut into
shingles, 5-grams of characters by default (`shingle="char"`): prompts are short, often 30-60
words, where word 5-grams share almost nothing even between paraphrases, while character
5-grams still see a renamed function or a reworded sentence as mostly the same text (on iterkd's
seed and held-out sets, distinct questions stay below 0.35 Jaccard with character 5-grams).
`shingle="word"` uses word 5-grams. Shingle sets become MinHash signatures (`minhashing.py`:
numpy, datasketch's affine32 scheme and seed, so the same text always hashes the same), looked
up with datasketch's MinHashLSH at the configured Jaccard threshold;
each LSH hit is confirmed with the MinHash estimate, so a reported duplicate has an estimated
Jaccard >= threshold. LSH can miss a pair whose estimate sits right at the threshold: the price
of not comparing every pair.

Decontamination against the held-out set: (1) exact, a normalised held-out prompt or reference
solution contained in a candidate's normalised prompt or solution, or the reverse; (2) near, the
MinHash check above against held-out prompts, at `contamination_threshold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datasketch import LeanMinHash, MinHashLSH

from iterkd.questions import Question
from iterkd.synthesis.minhashing import (
    ShingleUnit,
    lean,
    minhash,
    normalise,
    signatures,
)

MIN_EXACT_CHARS = 32  # shorter normalised texts are too generic for a substring test to mean much

__all__ = [
    "ContaminationChecker", "NearDuplicateIndex", "ShingleUnit", "minhash", "normalise",
    "shingles",
]  # fmt: skip


def shingles(text: str, size: int = 5, unit: ShingleUnit = "char") -> set[str]:
    """n-gram shingles of the normalised text; a text shorter than n is one shingle. (The index
    hashes the same shingles without building these strings: `minhashing.shingle_hashes`.)"""
    norm = normalise(text)
    tokens: Sequence[str] = norm if unit == "char" else norm.split()
    joiner = "" if unit == "char" else " "
    if len(tokens) <= size:
        return {joiner.join(tokens)}
    return {joiner.join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


class NearDuplicateIndex:
    """Texts by key; `matches(text)` -> the keys whose estimated Jaccard is >= threshold. The
    `*_many` forms sketch their texts in one batch (faster); the results are the same."""

    def __init__(
        self, threshold: float, num_perm: int = 128, size: int = 5, unit: ShingleUnit = "char"
    ) -> None:
        self.threshold = threshold
        self._shape = (num_perm, size, unit)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._hashes: dict[str, LeanMinHash] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, key: str) -> bool:
        return key in self._hashes

    def add(self, key: str, text: str) -> None:
        """Index `text` under `key`; a key seen before is kept as first given."""
        self.add_many([(key, text)])

    def add_many(self, items: Iterable[tuple[str, str]]) -> None:
        fresh: dict[str, str] = {}
        for key, text in items:
            if key not in self._hashes:
                fresh.setdefault(key, text)
        rows = signatures(list(fresh.values()), *self._shape)
        with self._lsh.insertion_session() as session:
            for key, row in zip(fresh, rows, strict=True):
                self._hashes[key] = lean(row)
                session.insert(key, self._hashes[key], check_duplication=False)

    def matches(self, text: str) -> list[tuple[str, float]]:
        """(key, estimated Jaccard) of the indexed texts near `text`, closest first."""
        return self.matches_many([text])[0]

    def matches_many(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        return [self._near(lean(row)) for row in signatures(texts, *self._shape)]

    def _near(self, query: LeanMinHash) -> list[tuple[str, float]]:
        scored = [(key, query.jaccard(self._hashes[key])) for key in self._lsh.query(query)]
        near = [(key, round(j, 3)) for key, j in scored if j >= self.threshold]
        return sorted(near, key=lambda pair: (-pair[1], pair[0]))


class ContaminationChecker:
    """Is a candidate (prompt, solution) too close to a held-out question?"""

    def __init__(
        self,
        held_out: Sequence[Question],
        threshold: float,
        num_perm: int = 128,
        size: int = 5,
        unit: ShingleUnit = "char",
    ) -> None:
        self._texts = [
            (q.id, field, normalise(text))
            for q in held_out
            for field, text in (("prompt", q.prompt), ("solution", q.reference_solution))
        ]
        self._near = NearDuplicateIndex(threshold, num_perm, size, unit)
        self._near.add_many((question.id, question.prompt) for question in held_out)

    def reasons(self, prompt: str, solution: str) -> list[str]:
        """Every contamination found, one `code: detail` line each; empty when clean."""
        out = [f"contaminated_exact: {hit}" for hit in self._exact(prompt, solution)]
        out += [
            f"contaminated_near: {key} prompt (jaccard {j})"
            for key, j in self._near.matches(prompt)
        ]
        return out

    def _exact(self, prompt: str, solution: str) -> list[str]:
        mine = [
            (f, t) for f, t in (("prompt", normalise(prompt)), ("solution", normalise(solution)))
        ]
        hits: list[str] = []
        for key, field, theirs in self._texts:
            for own_field, own in mine:
                if _overlaps(own, theirs):
                    hits.append(f"{own_field} overlaps {key} {field}")
        return sorted(set(hits))


def _overlaps(a: str, b: str) -> bool:
    """One normalised text contains the other, the contained one being long enough to count."""
    short, long = sorted((a, b), key=len)
    return len(short) >= MIN_EXACT_CHARS and short in long

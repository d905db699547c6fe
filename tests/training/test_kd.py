"""Token-level KD over the teacher's top-k (`iterkd/training/kd.py`): values against hand
computation, zero when the student is the teacher, k columns of the LM head equal the full
projection, and a student trained on the loss moves toward the teacher on held-out rows."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from iterkd.training.kd import (
    chunked_topk_logits,
    gathered_topk_logits,
    kd_loss,
    student_topk_logits,
    topk_targets,
)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def _softmax(row: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(x / temperature) for x in row]
    return [e / sum(exps) for e in exps]


TEACHER = [[2.0, 1.0, -1.0], [0.5, 0.0, 3.0]]
STUDENT = [[0.0, 1.5, 0.5], [1.0, 1.0, 1.0]]


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_forward_and_reverse_kl_against_hand_computation(temperature: float) -> None:
    t, s = torch.tensor(TEACHER), torch.tensor(STUDENT)
    pt = [_softmax(r, temperature) for r in TEACHER]
    ps = [_softmax(r, temperature) for r in STUDENT]
    forward = sum(_kl(a, b) for a, b in zip(pt, ps, strict=True)) / 2
    reverse = sum(_kl(b, a) for a, b in zip(pt, ps, strict=True)) / 2
    assert kd_loss(s, t, "forward_kl", temperature=temperature).item() == pytest.approx(
        forward, rel=1e-5
    )
    assert kd_loss(s, t, "reverse_kl", temperature=temperature).item() == pytest.approx(
        reverse, rel=1e-5
    )


def test_jsd_against_hand_computation() -> None:
    beta = 0.3
    total = 0.0
    for trow, srow in zip(TEACHER, STUDENT, strict=True):
        pt, ps = _softmax(trow), _softmax(srow)
        mix = [beta * a + (1 - beta) * b for a, b in zip(pt, ps, strict=True)]
        total += beta * _kl(pt, mix) + (1 - beta) * _kl(ps, mix)
    value = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), "jsd", beta=beta).item()
    assert value == pytest.approx(total / 2, rel=1e-5)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_zero_when_the_student_is_the_teacher(kind: str) -> None:
    logits = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    assert kd_loss(logits, logits.clone(), kind).item() == pytest.approx(0.0, abs=1e-6)  # type: ignore[arg-type]
    assert kd_loss(logits[:0], logits[:0], kind).item() == 0.0  # type: ignore[arg-type]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kd kind must be one of forward_kl, reverse_kl, jsd"):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), "kl")  # type: ignore[arg-type]


def test_k_columns_of_the_head_equal_the_full_projection() -> None:
    generator = torch.Generator().manual_seed(1)
    hidden, weight = torch.randn(4, 6, generator=generator), torch.randn(50, 6, generator=generator)
    full = hidden @ weight.T
    ids, values = topk_targets(full, 7)
    assert ids.dtype == torch.int32 and torch.equal(values, full.topk(7).values)
    assert torch.allclose(student_topk_logits(hidden, weight, ids), values, atol=1e-5)


def _logits_and_grads(path, hidden, weight, ids, autocast: bool = False):
    hidden.grad = None
    if weight.requires_grad:
        weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = path(hidden, weight, ids)
    logits.float().square().sum().backward()
    head_grad = weight.grad.clone() if weight.requires_grad else None
    return logits.detach().float(), hidden.grad.clone(), head_grad


def test_the_chunked_head_gives_the_gathered_logits_and_gradients() -> None:
    """Chunks of 7 positions over 30 (the last one short), against the gathered reference."""
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(30, 6, generator=generator, requires_grad=True)
    weight = torch.randn(50, 6, generator=generator, requires_grad=True)
    ids = torch.randint(0, 50, (30, 4), generator=generator)
    chunked = _logits_and_grads(
        functools.partial(chunked_topk_logits, chunk_rows=7), hidden, weight, ids
    )
    gathered = _logits_and_grads(gathered_topk_logits, hidden, weight, ids)
    for ours, reference in zip(chunked, gathered, strict=True):
        assert torch.allclose(ours, reference, atol=1e-4)
    assert chunked[2].abs().sum() > 0  # the head's gradient is not left out
    assert chunked_topk_logits(hidden[:0], weight, ids[:0]).shape == (0, 4)


def test_the_chunked_head_under_bf16_autocast_and_with_a_frozen_head() -> None:
    """Training's two settings: fp32 master weights under bf16 autocast (the matmuls in bf16,
    as the gathered einsum's), and LoRA's frozen head (no gradient for it, the hidden's still)."""
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(40, 16, generator=generator, requires_grad=True)
    weight = torch.randn(64, 16, generator=generator, requires_grad=True)
    ids = torch.randint(0, 64, (40, 5), generator=generator)
    path = functools.partial(chunked_topk_logits, chunk_rows=16)
    chunked = _logits_and_grads(path, hidden, weight, ids, autocast=True)
    gathered = _logits_and_grads(gathered_topk_logits, hidden, weight, ids, autocast=True)
    for ours, reference in zip(chunked, gathered, strict=True):
        # bf16 keeps ~3 significant digits: within 1 % of the largest value
        assert (ours - reference).abs().max() <= 1e-2 * reference.abs().max()
    full = _logits_and_grads(path, hidden, weight, ids)
    assert not torch.equal(chunked[0], full[0])  # the autocast run did compute in bf16
    frozen = weight.detach()
    _, hidden_grad, head_grad = _logits_and_grads(path, hidden, frozen, ids)
    assert head_grad is None and torch.allclose(hidden_grad, full[1], atol=1e-4)


def test_a_student_trained_on_the_loss_moves_toward_the_teacher() -> None:
    """A random linear student and teacher over 40 tokens, top-20 targets: 300 steps of forward KL on train
    rows lower the full-vocabulary KL on held-out rows."""
    generator = torch.Generator().manual_seed(2)
    teacher = torch.randn(40, 16, generator=generator)
    student = torch.nn.Parameter(torch.randn(40, 16, generator=generator))
    train, held = torch.randn(64, 16, generator=generator), torch.randn(32, 16, generator=generator)
    ids, targets = topk_targets(train @ teacher.T, 20)

    def held_kl() -> float:
        pt = torch.log_softmax(held @ teacher.T, -1)
        ps = torch.log_softmax(held @ student.detach().T, -1)
        return float((pt.exp() * (pt - ps)).sum(-1).mean())

    before = held_kl()
    optimizer = torch.optim.Adam([student], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        kd_loss(student_topk_logits(train, student, ids), targets, "forward_kl").backward()
        optimizer.step()
    assert held_kl() < 0.5 * before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_trainer_takes_the_chunked_head_and_it_equals_the_gather() -> None:
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(3000, 64, generator=generator).cuda().requires_grad_()
    weight = torch.randn(1000, 64, generator=generator).cuda().requires_grad_()
    ids = torch.randint(0, 1000, (3000, 8), generator=generator).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours = student_topk_logits(hidden, weight, ids)
    reference = chunked_topk_logits(hidden, weight, ids)
    assert ours.dtype == torch.float32  # the chunked path's output (the gather's is bf16)
    ours.square().sum().backward()
    grads = (hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        gathered = gathered_topk_logits(hidden, weight, ids)
    gathered.float().square().sum().backward()
    pairs = [(ours, reference), *zip(grads, (hidden.grad, weight.grad), strict=True)]
    for found, expected in pairs:
        assert (found.detach() - expected.detach()).abs().max() <= 1e-2 * expected.abs().max()

"""The losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from iterkd.training.losses import margin_loss, sequence_logprob, token_logprobs, token_nll

LN3 = math.log(3.0)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences over a 2-token vocabulary. Row 0: prompt token, then 2 answer tokens;
    row 1: prompt token, 1 answer token, 1 padding. Position t's logits predict token t+1."""
    logits = torch.tensor(
        [
            [[0.0, LN3], [0.0, 0.0], [50.0, -50.0]],  # p(1)=3/4; p(0)=1/2; last: predicts nothing
            [[LN3, 0.0], [-50.0, 50.0], [0.0, 0.0]],  # p(0)=3/4; behind padding: ignored
        ]
    )
    labels = torch.tensor([[-100, 1, 0], [-100, 0, -100]])
    return logits, labels


def test_token_logprobs_are_shifted_and_masked():
    logits, labels = batch()
    logps, mask = token_logprobs(logits, labels)
    assert mask.tolist() == [[True, True], [True, False]]
    expected = [math.log(0.75), math.log(0.5), math.log(0.75), 0.0]  # row by row
    assert logps.flatten().tolist() == pytest.approx(expected)


def test_token_nll_is_a_mean_over_every_completion_token():
    logps, mask = token_logprobs(*batch())
    # three tokens in all (not a mean of per-row means)
    expected = -(2 * math.log(0.75) + math.log(0.5)) / 3
    assert token_nll(logps, mask).item() == pytest.approx(expected)
    assert token_nll(logps[:0], mask[:0]).item() == 0.0


def test_token_nll_equals_the_models_own_cross_entropy():
    logits, labels = batch()
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 2), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert token_nll(*token_logprobs(logits, labels)).item() == pytest.approx(reference.item())


def test_sequence_logprob_sum_and_length_normalised_mean():
    total, mean = sequence_logprob(*token_logprobs(*batch()))
    assert total.tolist() == pytest.approx([math.log(0.75) + math.log(0.5), math.log(0.75)])
    assert mean.tolist() == pytest.approx([(math.log(0.75) + math.log(0.5)) / 2, math.log(0.75)])


def test_margin_loss_by_hand():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0])
    loss, margin = margin_loss(chosen, rejected, beta=2.0, gamma=0.5)
    assert margin.tolist() == [1.0, -1.0]
    # -logsigmoid(x) = log(1 + exp(-x)); x = 2 * margin - 0.5 = 1.5 and -2.5
    expected = (math.log1p(math.exp(-1.5)) + math.log1p(math.exp(2.5))) / 2
    assert loss.item() == pytest.approx(expected)


def test_margin_loss_gradient_raises_chosen_and_lowers_rejected():
    chosen = torch.tensor([-1.0], requires_grad=True)
    rejected = torch.tensor([-1.0], requires_grad=True)
    loss, _ = margin_loss(chosen, rejected, beta=1.0, gamma=0.0)
    assert loss.item() == pytest.approx(math.log(2.0))  # no margin yet: -logsigmoid(0)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.5)  # descent raises chosen
    assert rejected.grad.item() == pytest.approx(0.5)  # and lowers rejected

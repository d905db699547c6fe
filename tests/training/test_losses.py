"""The losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from iterkd.training.losses import (
    cpo_loss,
    dpo_loss,
    infonce_loss,
    margin_loss,
    sequence_logprob,
    token_logprobs,
    token_nll,
    weighted_nll,
)

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


def nll(x: float) -> float:
    """-logsigmoid(x), by hand."""
    return math.log1p(math.exp(-x))


# ------------------------------------------------------------------ weighted NLL
ROW0 = -(math.log(0.75) + math.log(0.5))  # batch()'s row 0: two answer tokens
ROW1 = -math.log(0.75)  # row 1: one answer token


def test_weighted_nll_with_weights_of_one_is_token_nll():
    logps, mask = token_logprobs(*batch())
    weighted = weighted_nll(logps, mask, torch.ones(2))
    assert weighted.item() == pytest.approx(token_nll(logps, mask).item())
    assert weighted.item() == pytest.approx((ROW0 + ROW1) / 3)
    assert weighted_nll(logps[:0], mask[:0], torch.ones(0)).item() == 0.0


def test_weighted_nll_a_half_weight_row_pulls_half_as_hard():
    logps, mask = token_logprobs(*batch())
    loss = weighted_nll(logps, mask, torch.tensor([1.0, 0.5]))
    assert loss.item() == pytest.approx((ROW0 + 0.5 * ROW1) / 3)
    loss = weighted_nll(logps, mask, torch.tensor([0.5, 1.0]))
    assert loss.item() == pytest.approx((0.5 * ROW0 + ROW1) / 3)


def test_weighted_nll_a_zero_weight_row_adds_nothing_but_its_tokens_stay_in_the_denominator():
    logps, mask = token_logprobs(*batch())
    loss = weighted_nll(logps, mask, torch.tensor([1.0, 0.0]))
    # the denominator is every completion token of the batch (3), not the weighted count (2)
    assert loss.item() == pytest.approx(ROW0 / 3)
    assert loss.item() != pytest.approx(ROW0 / 2)
    loss = weighted_nll(logps, mask, torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx(ROW1 / 3)


# ------------------------------------------------------------------ CPO / DPO
def test_cpo_loss_by_hand_on_summed_logprobs():
    chosen, rejected = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -4.0])
    loss, margin = cpo_loss(chosen, rejected, beta=0.5)
    assert margin.tolist() == [1.0, -1.0]
    assert loss.item() == pytest.approx((nll(0.5) + nll(-0.5)) / 2)


def test_dpo_loss_by_hand_against_the_reference():
    chosen, rejected = torch.tensor([-3.0, -6.0]), torch.tensor([-4.0, -2.0])
    ref_chosen, ref_rejected = torch.tensor([-3.5, -5.0]), torch.tensor([-3.0, -3.0])
    loss, margin = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
    # (c - ref_c) - (r - ref_r): 0.5 - (-1) = 1.5 and -1 - 1 = -2
    assert margin.tolist() == pytest.approx([1.5, -2.0])
    assert loss.item() == pytest.approx((nll(0.75) + nll(-1.0)) / 2)


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference():
    chosen = torch.tensor([-3.0], requires_grad=True)
    rejected = torch.tensor([-7.0], requires_grad=True)
    loss, margin = dpo_loss(chosen, rejected, torch.tensor([-3.0]), torch.tensor([-7.0]), 0.1)
    assert margin.tolist() == [0.0]
    assert loss.item() == torch.tensor(math.log(2.0)).item()  # exactly, in float32
    loss.backward()
    # d/dc -logsigmoid(beta * m) = -beta * sigmoid(-beta * m) = -0.1 / 2 at m = 0
    assert chosen.grad.item() == pytest.approx(-0.05)  # descent raises chosen
    assert rejected.grad.item() == pytest.approx(0.05)  # and lowers rejected


# ------------------------------------------------------------------ InfoNCE
def test_infonce_loss_by_hand_on_groups_of_different_sizes():
    chosen = torch.tensor([-1.0, -0.5])
    rejected = torch.tensor([-2.0, -1.5, -0.25])
    group = torch.tensor([0, 0, 1])  # group 0: two negatives; group 1: one
    loss, margin = infonce_loss(chosen, rejected, group, beta=2.0)

    def group_loss(c: float, negatives: list[float]) -> float:
        b = 2.0
        return -math.log(
            math.exp(b * c) / (math.exp(b * c) + sum(math.exp(b * r) for r in negatives))
        )

    expected = (group_loss(-1.0, [-2.0, -1.5]) + group_loss(-0.5, [-0.25])) / 2
    assert loss.item() == pytest.approx(expected)
    assert margin.tolist() == pytest.approx([1.0, 0.5, -0.25])  # chosen[group] - rejected


def test_infonce_with_one_negative_per_group_is_the_margin_loss_without_gamma():
    torch.manual_seed(0)
    chosen, rejected = torch.randn(5), torch.randn(5)
    loss, margin = infonce_loss(chosen, rejected, torch.arange(5), beta=1.7)
    pair_loss, pair_margin = margin_loss(chosen, rejected, beta=1.7, gamma=0.0)
    assert loss.item() == pytest.approx(pair_loss.item(), rel=1e-5)
    assert torch.allclose(margin, pair_margin)
    expected = -torch.nn.functional.logsigmoid(1.7 * (chosen - rejected)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_infonce_gradients_are_finite_and_push_chosen_up_and_negatives_down():
    chosen = torch.tensor([-1.0, -0.5], requires_grad=True)
    rejected = torch.tensor([-2.0, -1.5, -0.25], requires_grad=True)
    # group 1 has one negative: its row of the table is mostly -inf
    loss, _ = infonce_loss(chosen, rejected, torch.tensor([0, 0, 1]), beta=2.0)
    loss.backward()
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()
    assert (chosen.grad < 0).all()  # descent raises every chosen
    assert (rejected.grad > 0).all()  # and lowers every negative
    # by hand, group 1 alone: d/dc = -(1 - softmax_c) * beta / groups; softmax_c = sigmoid(b*(c-r))
    p = 1 / (1 + math.exp(-2.0 * (-0.5 + 0.25)))
    assert chosen.grad[1].item() == pytest.approx(-(1 - p) * 2.0 / 2)
    assert rejected.grad[2].item() == pytest.approx((1 - p) * 2.0 / 2)

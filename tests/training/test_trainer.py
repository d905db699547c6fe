"""The trainer on the tiny student: batches, loss, what LoRA trains, the contrastive term."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from iterkd.config import TrainConfig
from iterkd.generation.base import render_with_chat_template
from iterkd.modeling import load_tokenizer
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord
from iterkd.stages.common import solve_prompt
from iterkd.training.data import IGNORE_INDEX, build_examples
from iterkd.training.losses import sequence_logprob, token_logprobs
from iterkd.training.sfim import FimTokens, ensure_fim_tokens, needs_new_fim_tokens
from iterkd.training.trainer import (
    Contrastive,
    ExampleCollator,
    build_trainer,
    forward_losses,
    last_complete_checkpoint,
    load_student,
    log_rows,
    model_logprobs,
    save_checkpoint,
    score_sequences,
    torch_threads,
    train_student,
)

FAST = {"learning_rate": 1e-2, "lr_scheduler": "constant", "batch_size": 4, "max_steps": 10}


def record(question, role: str, code: str) -> SampleRecord:
    return SampleRecord(
        id=f"{question.id}/{role}/0",
        question_id=question.id,
        role=role,
        index=0,
        text=f"```python\n{code}```",
        code=code,
        finish_reason="stop",
        prompt_tokens=1,
        completion_tokens=1,
    )


@pytest.fixture(scope="module")
def student(tiny_models: Path) -> Path:
    return tiny_models / "student"


@pytest.fixture(scope="module")
def tokenizer(student: Path):
    return load_tokenizer(student, need_chat_template=True)


@pytest.fixture(scope="module")
def examples(tokenizer) -> list[dict]:
    """Two questions: an SFT row each (the reference solution) and a pair each (against a
    body that returns None)."""
    questions = load_bundled("seed")[:2]
    rows = [record(q, "teacher", q.reference_solution) for q in questions]
    faults = [record(q, "student", q.prompt + "    return None\n") for q in questions]
    prompts = {q.id: render_with_chat_template(tokenizer, solve_prompt(q), "t") for q in questions}
    built, _ = build_examples(tokenizer, prompts, rows, list(zip(rows, faults, strict=True)), 512)
    return built


def run_training(model, examples, cfg: TrainConfig, output_dir: Path, tokenizer, **kwargs):
    with torch_threads(1):
        return train_student(
            model,
            examples,
            cfg,
            seed=0,
            output_dir=output_dir,
            tokenizer=tokenizer,
            use_cpu=True,
            **kwargs,
        )


def train(student: Path, examples, tmp_path: Path, tokenizer, **overrides):
    cfg = TrainConfig(**(FAST | overrides))
    model = load_student(student, None, cfg, seed=0, bf16=False)
    return model, run_training(model, examples, cfg, tmp_path / "trainer", tokenizer)


def measure(model, batch, weight: float = 1.0):
    model.eval()
    with torch.no_grad():
        return forward_losses(model, batch, Contrastive(weight, 2.0, 0.5))


def test_collator_stacks_rows_then_chosen_then_rejected():
    a = {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]}
    b = {"input_ids": [8, 9], "labels": [IGNORE_INDEX, 9]}
    c = {"input_ids": [1], "labels": [1]}
    batch = ExampleCollator(pad_token_id=0)(
        [
            {"chosen": a, "rejected": [b, c], "ref": [-1.0, -2.0, -3.0]},
            {"sft": c, "weight": 0.5, "objective": "sfim"},
        ]
    )
    assert (batch["num_nll"], batch["num_groups"]) == (1, 1)
    assert batch["input_ids"].tolist() == [[1, 0, 0], [5, 6, 7], [8, 9, 0], [1, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]]
    assert batch["labels"].tolist() == [
        [1, -100, -100],
        [-100, 6, 7],
        [-100, 9, -100],
        [1, -100, -100],
    ]
    assert batch["nll_weight"].tolist() == [0.5] and batch["is_sfim"].tolist() == [True]
    assert batch["group"].tolist() == [0, 0]
    assert batch["ref_chosen"].tolist() == [-1.0]
    assert batch["ref_rejected"].tolist() == [-2.0, -3.0]


def test_forward_losses_nll_is_the_models_own_loss(student, examples):
    model = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    batch = ExampleCollator(0)(examples)
    terms = measure(model, batch, weight=0.5)
    sft = batch["num_nll"]
    with torch.no_grad():
        own = model(
            input_ids=batch["input_ids"][:sft],
            attention_mask=batch["attention_mask"][:sft],
            labels=batch["labels"][:sft],
        ).loss
    assert terms.nll.item() == pytest.approx(own.item(), rel=1e-5)
    assert terms.loss.item() == pytest.approx(terms.nll.item() + 0.5 * terms.contrastive.item())
    only_rows = measure(model, ExampleCollator(0)(examples[:sft]))
    assert only_rows.contrastive is None and only_rows.margin is None


def test_loss_decreases_and_only_lora_weights_change(student, examples, tokenizer, tmp_path):
    cfg = TrainConfig(**FAST)
    model = load_student(student, None, cfg, seed=0, bf16=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = ExampleCollator(0)(examples)
    loss_before = measure(model, batch).loss.item()
    outcome = run_training(model, examples, cfg, tmp_path, tokenizer)
    assert outcome.steps == 10 and len(outcome.log) == 10
    assert measure(model, batch).loss.item() < loss_before - 0.3
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed == trainable and trainable
    assert all("lora_" in name for name in trainable)


def test_contrastive_term_raises_the_margin(student, examples, tokenizer, tmp_path):
    batch = ExampleCollator(0)(examples)
    start = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    margin_before = measure(start, batch).margin.item()
    sft_only, _ = train(student, examples, tmp_path / "a", tokenizer, contrastive_weight=0.0)
    contrastive, outcome = train(
        student, examples, tmp_path / "b", tokenizer, contrastive_weight=1.0
    )
    margin_sft = measure(sft_only, batch).margin.item()
    margin_contrastive = measure(contrastive, batch).margin.item()
    assert margin_contrastive > margin_before + 0.05
    assert margin_contrastive > margin_sft + 0.05
    assert all(row["margin"] is not None for row in outcome.log)


def test_full_fine_tuning_trains_every_weight_and_saves_model_and_tokenizer(
    student, examples, tokenizer, tmp_path
):
    cfg = TrainConfig(method="full", **(FAST | {"max_steps": 2}))
    model = load_student(student, None, cfg, seed=0, bf16=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    run_training(model, examples, cfg, tmp_path / "trainer", tokenizer)
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert save_checkpoint(model, tokenizer, tmp_path / "ckpt") == "full"
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names


def test_a_saved_adapter_is_continued_trainable(student, examples, tokenizer, tmp_path):
    model, outcome = train(
        student, examples, tmp_path, tokenizer, max_steps=2, gradient_checkpointing=True
    )
    assert outcome.steps == 2
    assert save_checkpoint(model, tokenizer, tmp_path / "adapter") == "adapter"
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # lora_B starts at zero: non-zero, it was trained (through the checkpointed layers)
    assert all(p.abs().sum() > 0 for n, p in saved.items() if "lora_B" in n)
    again = load_student(student, tmp_path / "adapter", TrainConfig(lora_r=4), seed=1, bf16=False)
    params = dict(again.named_parameters())
    assert {n for n, p in params.items() if p.requires_grad} == set(saved)  # r stays the adapter's
    assert all(torch.equal(params[n], saved[n]) for n in saved)


def test_log_rows_keep_training_steps_without_timings():
    history = [
        {
            "loss": 2.0000001,
            "nll": 1.5,
            "learning_rate": 0.01,
            "grad_norm": 3.0,
            "epoch": 0.5,
            "step": 1,
        },
        {"train_runtime": 1.2, "train_samples_per_second": 9.0, "train_loss": 2.0, "step": 1},
    ]
    assert log_rows(history) == [
        {
            "step": 1,
            "epoch": 0.5,
            "loss": 2.0,
            "nll": 1.5,
            "sfim": None,
            "contrastive": None,
            "margin": None,
            "kd": None,
            "learning_rate": 0.01,
            "grad_norm": 3.0,
        }
    ]


def test_torch_threads_restores_the_count():
    count = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == count


# ------------------------------------------------------------------ objectives
def with_reference(model, examples: list[dict], tokenizer) -> list[dict]:
    """dpo examples: each group's reference sums, scored by the start model."""
    out = []
    for example in examples:
        if "chosen" not in example:
            out.append(example)
            continue
        seqs = [example["chosen"], *example["rejected"]]
        sums = [total for total, _ in score_sequences(model, seqs, tokenizer.pad_token_id, 4)]
        out.append(example | {"ref": sums})
    return out


@pytest.mark.parametrize("objective", ["cpo", "dpo", "infonce"])
def test_each_objective_raises_the_margin_on_held_pairs(
    objective, student, examples, tokenizer, tmp_path
):
    cfg = TrainConfig(contrastive_loss=objective, contrastive_weight=1.0, **FAST)
    model = load_student(student, None, cfg, seed=0, bf16=False)
    data = with_reference(model, examples, tokenizer) if objective == "dpo" else examples
    batch = ExampleCollator(0)(data)
    contrastive = Contrastive.from_config(cfg)
    model.eval()
    with torch.no_grad():
        before = forward_losses(model, batch, contrastive)
    outcome = run_training(model, data, cfg, tmp_path, tokenizer)
    model.eval()
    with torch.no_grad():
        after = forward_losses(model, batch, contrastive)
    assert after.contrastive.item() < before.contrastive.item()
    assert after.margin.item() > before.margin.item() + 0.05
    assert all(row["contrastive"] is not None for row in outcome.log)


def test_dpo_without_reference_log_probs_is_refused(student, examples):
    model = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    with pytest.raises(ValueError, match="reference log-probs"):
        forward_losses(model, ExampleCollator(0)(examples), Contrastive(1.0, 1.0, 0.0, "dpo"))


def test_score_sequences_equals_log_probs_from_the_full_logits(student, examples):
    model = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    sequences = [e["sft"] for e in examples if "sft" in e]
    scores = score_sequences(model, sequences, pad_token_id=0, batch_size=1)
    batch = ExampleCollator(0)([{"sft": s} for s in sequences])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    sums, means = sequence_logprob(*token_logprobs(logits, batch["labels"]))
    assert [s for s, _ in scores] == pytest.approx(sums.tolist(), rel=1e-5)
    assert [m for _, m in scores] == pytest.approx(means.tolist(), rel=1e-5)


def test_infonce_groups_go_through_one_forward_pass(student, examples):
    """A group of two negatives: the batch holds chosen + 2 rejected rows, both in group 0."""
    pair = next(e for e in examples if "chosen" in e)
    group = pair | {"rejected": [pair["rejected"][0], examples[0]["sft"]]}
    batch = ExampleCollator(0)([group])
    assert batch["input_ids"].shape[0] == 3 and batch["group"].tolist() == [0, 0]
    model = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    terms = measure_with(model, batch, Contrastive(1.0, 2.0, 0.0, "infonce"))
    assert terms.nll is None and terms.contrastive.item() > 0


def measure_with(model, batch, contrastive: Contrastive):
    model.eval()
    with torch.no_grad():
        return forward_losses(model, batch, contrastive)


# ------------------------------------------------------------------ resuming
class StopAt(TrainerCallback):
    """Kill stand-in: raise at the end of `step` (after the Trainer's checkpoints before it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"stopped at step {self.step}")


def test_a_stopped_training_resumes_from_its_checkpoint_to_the_same_weights(
    student, examples, tokenizer, tmp_path
):
    cfg = TrainConfig(**(FAST | {"max_steps": 6, "save_steps": 2}))
    whole = load_student(student, None, cfg, seed=0, bf16=False)
    reference = run_training(whole, examples, cfg, tmp_path / "whole", tokenizer)
    # the last step saves no trainer checkpoint: the stage saves the model itself
    assert sorted(p.name for p in (tmp_path / "whole").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    stopped = load_student(student, None, cfg, seed=0, bf16=False)
    with pytest.raises(KeyboardInterrupt):
        run_training(stopped, examples, cfg, tmp_path / "cut", tokenizer, callbacks=[StopAt(3)])
    assert last_complete_checkpoint(tmp_path / "cut").name == "checkpoint-2"
    again = load_student(student, None, cfg, seed=0, bf16=False)
    resumed = run_training(again, examples, cfg, tmp_path / "cut", tokenizer)
    assert resumed.resumed_from_step == 2 and reference.resumed_from_step == 0
    assert resumed.steps == reference.steps == 6
    assert resumed.log == reference.log
    final = dict(whole.named_parameters())
    assert all(torch.equal(p, final[n]) for n, p in again.named_parameters())


def test_a_torn_checkpoint_is_skipped_and_removed(tmp_path):
    good, torn, half = (
        tmp_path / "checkpoint-2",
        tmp_path / "checkpoint-4",
        tmp_path / "checkpoint-6",
    )
    for directory in (good, torn, half):
        directory.mkdir()
    (good / "trainer_state.json").write_text("{}")
    (half / "trainer_state.json").write_text('{"global_st')  # killed while writing it
    assert last_complete_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


# ------------------------------------------------------------------ SFIM tokens
def test_full_fine_tuning_grows_the_embeddings_to_a_tokenizer_with_fim_sentinels(student):
    tokenizer = load_tokenizer(student, need_chat_template=True)
    cfg = TrainConfig(method="full", sfim_ratio=0.5)
    assert needs_new_fim_tokens(tokenizer, cfg) == ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"]
    assert needs_new_fim_tokens(tokenizer, TrainConfig()) == []  # SFIM off: nothing needed
    ensure_fim_tokens(tokenizer, None, FimTokens())
    assert needs_new_fim_tokens(tokenizer, cfg) == []
    model = load_student(student, None, cfg, seed=0, bf16=False, tokenizer=tokenizer)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)


def test_group_by_length_batches_pad_less_than_random_ones(student, tokenizer, tmp_path):
    """Rows of 8 lengths from 20 to 160 tokens, 4 of each, batches of 4."""
    rows = [
        {"sft": {"input_ids": [5] * n, "labels": [5] * n}, "weight": 1.0, "objective": "sft"}
        for n in range(20, 180, 20)
        for _ in range(4)
    ]

    def padding(batching: str) -> int:
        cfg = TrainConfig(batching=batching, batch_size=4, max_steps=1)
        model = load_student(student, None, cfg, seed=0, bf16=False)
        trainer = build_trainer(
            model, rows, cfg, seed=0, output_dir=tmp_path, tokenizer=tokenizer, use_cpu=True
        )
        batches = list(trainer.get_train_dataloader())
        assert sum(b["num_nll"] for b in batches) == len(rows)
        return sum(int((b["attention_mask"] == 0).sum()) for b in batches)

    assert padding("group_by_length") < padding("random") / 2


def test_the_fused_lm_head_gives_the_log_probs_of_the_full_logits(student, examples):
    """On CPU the trainer takes the full logits (faster there); the fused head it takes on a
    GPU must agree (its Triton path is checked in test_trainer_gpu.py)."""
    model = load_student(student, None, TrainConfig(), seed=0, bf16=False)
    batch = ExampleCollator(0)(examples)
    with torch.no_grad():
        fused, fused_mask = model_logprobs(model, batch, fused=True)
        full, full_mask = model_logprobs(model, batch)
    assert torch.equal(fused_mask, full_mask)
    torch.testing.assert_close(fused, full, rtol=1e-5, atol=1e-5)

"""The student's trainer: a `transformers.Trainer` whose loss is SFT NLL plus a contrastive term.

    loss = NLL(SFT rows' answer tokens) + contrastive_weight * margin_loss(pairs)

A batch holds SFT rows and pairs (see `iterkd.training.data`); the collator stacks them as
[SFT rows..., chosen..., rejected...] so one forward pass scores all of them. A pair's chosen
answer is not added to the NLL: it is one of its question's SFT rows already (by construction),
which anchors the reference-free margin loss without weighting those rows twice.

Starting point: a round continues the student of the round before. If that student is a LoRA
adapter, the adapter is loaded trainable and trained further (its r, alpha and target modules
stay those of the round that created it), so the rounds accumulate in one adapter on the same
base instead of stacking adapters; `method: full` merges such an adapter into the weights first.
Optimizer and learning-rate schedule are fresh each round (nothing of them is saved).

Determinism: the LoRA initialisation and the data order are seeded; on CPU, with the same thread
count, two runs write byte-identical checkpoints and logs (no timings are logged).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from trl.trainer.utils import pad

from iterkd.config import TrainConfig
from iterkd.modeling import load_model
from iterkd.training.data import IGNORE_INDEX, Example
from iterkd.training.losses import margin_loss, sequence_logprob, token_logprobs, token_nll

LOG_KEYS = ("loss", "nll", "contrastive", "margin", "learning_rate", "grad_norm")
CheckpointKind = Literal["adapter", "full"]


@dataclass(frozen=True)
class Contrastive:
    weight: float
    beta: float
    gamma: float

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Contrastive:
        return cls(cfg.contrastive_weight, cfg.contrastive_beta, cfg.contrastive_gamma)


@dataclass(frozen=True)
class LossTerms:
    loss: torch.Tensor
    nll: torch.Tensor | None  # None: no SFT row in the batch
    contrastive: torch.Tensor | None  # None: no pair in the batch
    margin: torch.Tensor | None  # mean chosen-minus-rejected mean log-prob, detached


@dataclass(frozen=True)
class TrainOutcome:
    model: Any  # the trained model: a PeftModel (LoRA) or a PreTrainedModel (full)
    steps: int
    log: list[dict[str, Any]]  # one row per logging step, see `log_rows`


# ------------------------------------------------------------------ batches and losses
class ExampleCollator:
    """Examples -> one right-padded batch: [SFT rows..., chosen..., rejected...]."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[Example]) -> dict[str, Any]:
        sft = [f["sft"] for f in features if "sft" in f]
        pairs = [f for f in features if "chosen" in f]
        sequences = sft + [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
        ids = [torch.tensor(s["input_ids"], dtype=torch.long) for s in sequences]
        labels = [torch.tensor(s["labels"], dtype=torch.long) for s in sequences]
        return {
            "input_ids": pad(ids, padding_value=self.pad_token_id),
            "attention_mask": pad([torch.ones_like(t) for t in ids], padding_value=0),
            "labels": pad(labels, padding_value=IGNORE_INDEX),
            "num_sft": len(sft),
            "num_pairs": len(pairs),
        }


def forward_losses(model: Any, batch: dict[str, Any], contrastive: Contrastive) -> LossTerms:
    """One forward pass over the whole batch, then NLL on the SFT rows and the margin loss on
    the pairs; a term whose part of the batch is empty is left out."""
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logps, mask = token_logprobs(outputs.logits, batch["labels"])
    n_sft, n_pairs = int(batch["num_sft"]), int(batch["num_pairs"])
    nll = token_nll(logps[:n_sft], mask[:n_sft]) if n_sft else None
    pair_loss = margin = None
    if n_pairs:
        _, means = sequence_logprob(logps[n_sft:], mask[n_sft:])
        pair_loss, margins = margin_loss(
            means[:n_pairs], means[n_pairs:], contrastive.beta, contrastive.gamma
        )
        margin = margins.detach().mean()
    loss = logps.new_zeros(())
    if nll is not None:
        loss = loss + nll
    if pair_loss is not None:
        loss = loss + contrastive.weight * pair_loss
    return LossTerms(loss=loss, nll=nll, contrastive=pair_loss, margin=margin)


# ------------------------------------------------------------------ the trainer
class DistillationTrainer(Trainer):
    """`Trainer` with `forward_losses` as its loss; logs nll, contrastive and margin averaged
    over the micro-batches of each logging interval."""

    loss_is_scaled_for_ga = False  # a per-micro-batch mean: Trainer divides by the GA steps

    def __init__(self, *args: Any, contrastive: Contrastive, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contrastive = contrastive
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        terms = forward_losses(model, inputs, self.contrastive)
        for name in ("nll", "contrastive", "margin"):
            value = getattr(terms, name)
            if value is not None:
                self._metrics[name].append(value.item())
        return (terms.loss, None) if return_outputs else terms.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training-step log, not the end-of-training summary
            logs.update({k: sum(v) / len(v) for k, v in self._metrics.items() if v})
            self._metrics.clear()
        super().log(logs, start_time)


class LogLastStep(TrainerCallback):
    """Log the final step even when it does not fall on `logging_steps`: `loss_last` is then
    the loss the checkpoint was trained to."""

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control


# ------------------------------------------------------------------ model in, model out
def load_student(
    path: Path, adapter: str | Path | None, cfg: TrainConfig, *, seed: int, bf16: bool
) -> Any:
    """The model to train: a trainable LoRA (a new one, or `adapter` continued) or the full
    model. Seeded first: a new adapter's initial weights are random."""
    from peft import LoraConfig, PeftModel, get_peft_model

    set_seed(seed)
    # LoRA keeps its own weights in fp32 (peft's default), so a bf16 base is safe there; full
    # fine-tuning keeps fp32 master weights and gets bf16 from autocast only
    dtype = "bfloat16" if bf16 and cfg.method == "lora" else "float32"
    model = load_model(path, device="cpu", dtype=dtype, role="student")  # the Trainer moves it
    if cfg.method == "full":
        return PeftModel.from_pretrained(model, adapter).merge_and_unload() if adapter else model
    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def training_arguments(
    cfg: TrainConfig, output_dir: Path, *, seed: int, use_cpu: bool, bf16: bool
) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        logging_steps=cfg.logging_steps,
        save_strategy="no",  # a killed train stage restarts from scratch
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=use_cpu,
        bf16=bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        # non-reentrant: works with frozen inputs (LoRA) without forcing their grads on
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,  # the collator reads every field of an example
        dataloader_num_workers=0,
        dataloader_pin_memory=not use_cpu,
        disable_tqdm=True,
    )


def train_student(
    model: Any,
    examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    seed: int,
    output_dir: Path,
    pad_token_id: int,
    use_cpu: bool,
    bf16: bool = False,
) -> TrainOutcome:
    """Train `model` on `examples` and return it with its log."""
    args = training_arguments(cfg, output_dir, seed=seed, use_cpu=use_cpu, bf16=bf16)
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=list(examples),
        data_collator=ExampleCollator(pad_token_id),
        callbacks=[LogLastStep()],
        contrastive=Contrastive.from_config(cfg),
    )
    trainer.train()
    return TrainOutcome(
        model=trainer.model,
        steps=trainer.state.global_step,
        log=log_rows(trainer.state.log_history),
    )


def log_rows(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-step entries of a Trainer's log history, without timings: step, epoch and
    `LOG_KEYS` (None where a term had no data in the interval), floats rounded to 6 digits."""
    rows = []
    for entry in history:
        if "loss" not in entry:
            continue
        row: dict[str, Any] = {"step": entry["step"], "epoch": _rounded(entry.get("epoch"))}
        rows.append(row | {key: _rounded(entry.get(key)) for key in LOG_KEYS})
    return rows


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def save_checkpoint(model: Any, tokenizer: Any, directory: Path) -> CheckpointKind:
    """A LoRA model saves its adapter only; a full model saves weights and tokenizer."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        for config in model.peft_config.values():
            _sort_sets(config)
        model.save_pretrained(directory, safe_serialization=True)
        return "adapter"
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return "full"


def _sort_sets(config: Any) -> None:
    """peft writes set-valued fields (the modules "all-linear" expanded to) as `list(set)`,
    whose order changes with each process's string hashing: sorted, two runs write the same
    adapter_config.json. The adapter already built is not affected."""
    for field in fields(config):
        value = getattr(config, field.name)
        if isinstance(value, set):
            setattr(config, field.name, sorted(value))


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """`torch.set_num_threads(count)` for the block (nothing when None), then the old count: the
    float reduction order, so the exact weights, depends on it."""
    if count is None:
        yield
        return
    # torch's own setter: vLLM's CPU worker replaces `torch.set_num_threads` with a no-op in
    # any process that ran an engine, which would silently train with its thread count
    set_threads = torch._C.set_num_threads
    previous = torch.get_num_threads()
    set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)

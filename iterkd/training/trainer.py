"""The student's trainer: TRL's `SFTTrainer` with iterkd's loss, SFT NLL plus a contrastive term.

    loss = NLL(SFT and SFIM rows' answer tokens, weighted per row)
           + contrastive_weight * objective(chosen, rejected)     (objectives: see losses.py)

A batch holds NLL rows and contrastive groups (see `iterkd.training.data`); the collator stacks
them as [NLL rows..., chosen..., rejected...] so one forward pass scores all of them, and on a
GPU TRL's fused LM head (`add_fused_lm_head`) returns per-token log-probs of the labelled
positions without materialising [N, T, V] logits (on CPU the full logits are faster). A group's chosen answer is not added to the NLL: it is one of its
question's SFT rows already (by construction), which anchors the reference-free objectives
without weighting those rows twice. `dpo`'s reference log-probs come with the examples: the
train stage scores them once with the round-start student (`score_sequences`) before training.

Starting point: a round continues the student of the round before. If that student is a LoRA
adapter, the adapter is loaded trainable and trained further (its r, alpha and target modules
stay those of the round that created it), so the rounds accumulate in one adapter on the same
base instead of stacking adapters; `method: full` merges such an adapter into the weights first.
Optimizer and learning-rate schedule are fresh each round.

Resuming: the trainer saves a checkpoint (weights as safetensors, optimizer, scheduler, RNG
states) every `save_steps` into a folder outside the stage's output; a killed stage is started
again from its newest complete checkpoint and ends with the weights an uninterrupted run writes.

Determinism: the LoRA initialisation and the data order are seeded; on CPU, with the same thread
count, two runs write byte-identical checkpoints and logs (no timings are logged).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import TrainerCallback, TrainingArguments, set_seed
from trl import SFTConfig, SFTTrainer
from trl.trainer.utils import add_fused_lm_head, pad

from iterkd.config import TrainConfig
from iterkd.modeling import load_model
from iterkd.training.data import IGNORE_INDEX, Example
from iterkd.training.kd import KDKind, batch_targets, kd_loss, student_topk_logits
from iterkd.training.losses import (
    Objective,
    cpo_loss,
    dpo_loss,
    infonce_loss,
    margin_loss,
    sequence_logprob,
    token_logprobs,
    token_nll,
    weighted_nll,
)
from iterkd.training.sfim import grow_embeddings

LOG_KEYS = ("loss", "nll", "sfim", "contrastive", "margin", "kd", "learning_rate", "grad_norm")
CheckpointKind = Literal["adapter", "full"]
CHECKPOINT_PREFIX = "checkpoint-"


@dataclass(frozen=True)
class Contrastive:
    weight: float
    beta: float
    gamma: float
    loss: Objective = "margin"

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Contrastive:
        return cls(
            cfg.contrastive_weight,
            cfg.contrastive_beta,
            cfg.contrastive_gamma,
            cfg.contrastive_loss,
        )


@dataclass(frozen=True)
class Distill:
    """The token-level KD term's settings (`train.kd`); see iterkd/training/kd.py."""

    kind: KDKind
    weight: float
    beta: float
    temperature: float
    top_k: int

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Distill | None:
        kd = cfg.kd
        return None if kd is None else cls(kd.kind, kd.weight, kd.beta, kd.temperature, kd.top_k)


@dataclass(frozen=True)
class LossTerms:
    loss: torch.Tensor
    nll: torch.Tensor | None  # None: no SFT row in the batch (detached, for logging)
    sfim: torch.Tensor | None  # None: no SFIM row in the batch (detached, for logging)
    contrastive: torch.Tensor | None  # None: no pair in the batch
    margin: torch.Tensor | None  # mean chosen-minus-rejected of the compared log-probs, detached
    kd: torch.Tensor | None = None  # None: no KD position in the batch


@dataclass(frozen=True)
class TrainOutcome:
    model: Any  # the trained model: a PeftModel (LoRA) or a PreTrainedModel (full)
    steps: int
    log: list[dict[str, Any]]  # one row per logging step, see `log_rows`
    resumed_from_step: int  # 0: a fresh start


# ------------------------------------------------------------------ batches and losses
class ExampleCollator:
    """Examples -> one right-padded batch: [NLL rows..., chosen..., rejected...], with each NLL
    row's weight and objective, each rejected sequence's group and the reference sums if any."""

    def __init__(
        self, pad_token_id: int, kd_targets: Sequence[dict[str, torch.Tensor]] | None = None,
        top_k: int = 0,
    ) -> None:  # fmt: skip
        self.pad_token_id = pad_token_id
        self.kd_targets = kd_targets
        self.top_k = top_k

    def __call__(self, features: Sequence[Example]) -> dict[str, Any]:
        rows = [f for f in features if f.get("sft") is not None]
        groups = [f for f in features if f.get("chosen") is not None]
        rejected = [r for g in groups for r in g["rejected"]]
        sequences = [f["sft"] for f in rows] + [g["chosen"] for g in groups] + rejected
        ids = [torch.tensor(s["input_ids"], dtype=torch.long) for s in sequences]
        labels = [torch.tensor(s["labels"], dtype=torch.long) for s in sequences]
        batch = {
            "input_ids": pad(ids, padding_value=self.pad_token_id),
            "attention_mask": pad([torch.ones_like(t) for t in ids], padding_value=0),
            "labels": pad(labels, padding_value=IGNORE_INDEX),
            "num_nll": len(rows),
            "num_groups": len(groups),
            "nll_weight": torch.tensor([float(f.get("weight", 1.0)) for f in rows]),
            "is_sfim": torch.tensor([f.get("objective") == "sfim" for f in rows]),
            "is_kd_only": torch.tensor(
                [f.get("objective") == "kd" for f in rows], dtype=torch.bool
            ),
            "group": torch.tensor([k for k, g in enumerate(groups) for _ in g["rejected"]]),
        }
        kd_rows = [f.get("kd_row") for f in rows]
        if self.kd_targets is not None and any(r is not None for r in kd_rows):
            rows_of_batch = kd_rows + [None] * (len(sequences) - len(rows))
            batch |= batch_targets(rows_of_batch, batch["labels"], self.kd_targets, self.top_k)
        return batch | _reference(groups)


def _reference(groups: list[Example]) -> dict[str, torch.Tensor]:
    """The reference sums of a dpo batch (every group has them, or none does)."""
    refs = [g.get("ref") for g in groups]
    if not refs or any(r is None for r in refs):
        return {}
    return {
        "ref_chosen": torch.tensor([r[0] for r in refs], dtype=torch.float32),
        "ref_rejected": torch.tensor([x for r in refs for x in r[1:]], dtype=torch.float32),
    }


def model_logprobs(
    model: Any, batch: dict[str, Any], fused: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs [N, T-1] of the labelled positions (0 elsewhere) and their mask.

    On a GPU through the fused LM head `load_student` added (Triton: only the labelled positions
    are projected, no [N, T, V] logits are kept); on CPU from the full logits, which is faster
    there (TRL's CPU fallback projects every position, tile by tile, in Python). `fused` forces
    one or the other."""
    if fused is None:
        fused = batch["input_ids"].device.type in ("cuda", "xpu")
    if fused:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            fused_lm_head=True,
        )
        return out.log_probs, out.label_mask
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return token_logprobs(logits, batch["labels"])


def forward_losses(
    model: Any, batch: dict[str, Any], contrastive: Contrastive, distill: Distill | None = None
) -> LossTerms:
    """One forward pass over the whole batch, then the weighted NLL on the NLL rows, the
    contrastive objective on the groups and the KD term on the rows with teacher targets; a
    term whose part of the batch is empty is left out."""
    wants_kd = distill is not None and "kd_mask" in batch
    with _final_hidden(model, wants_kd) as hidden:
        logps, mask = model_logprobs(model, batch)
    n_rows, n_groups = int(batch["num_nll"]), int(batch["num_groups"])
    loss = logps.new_zeros(())
    nll = sfim = pair_loss = margin = None
    nll_rows = ~batch["is_kd_only"] if "is_kd_only" in batch else None
    if n_rows and (nll_rows is None or nll_rows.any()):
        keep = slice(None) if nll_rows is None or nll_rows.all() else nll_rows  # KD-only: no NLL
        row_logps, row_mask = logps[:n_rows][keep], mask[:n_rows][keep]
        weights = batch["nll_weight"][keep].to(logps.dtype)
        loss = loss + weighted_nll(row_logps, row_mask, weights)
        nll, sfim = _split_nll(row_logps.detach(), row_mask, batch["is_sfim"][keep])
    if n_groups:
        pair_loss, margins = _contrast(logps[n_rows:], mask[n_rows:], batch, contrastive)
        loss = loss + contrastive.weight * pair_loss
        margin = margins.detach().mean()
    kd = None
    if wants_kd:
        assert distill is not None
        kd = _kd_term(model, hidden[0], batch, distill)
        loss = loss + distill.weight * kd
    return LossTerms(loss=loss, nll=nll, sfim=sfim, contrastive=pair_loss, margin=margin, kd=kd)


@contextlib.contextmanager
def _final_hidden(model: Any, wanted: bool) -> Iterator[list[torch.Tensor]]:
    """The final norm's output of the next forward pass (what the LM head projects), caught by
    a hook: the KD term needs k columns of the head, not the [N, T, V] logits."""
    caught: list[torch.Tensor] = []
    if not wanted:
        yield caught
        return
    model = getattr(model, "module", model)  # DDP's wrapper
    norm = getattr(model.get_decoder(), "norm", None)
    if norm is None:
        raise ValueError(
            f"train.kd: {type(model).__name__} has no final norm at get_decoder().norm"
        )
    handle = norm.register_forward_hook(lambda module, args, output: caught.append(output))
    try:
        yield caught
    finally:
        handle.remove()


def _kd_term(
    model: Any, hidden: torch.Tensor, batch: dict[str, Any], distill: Distill
) -> torch.Tensor:
    mask = batch["kd_mask"]
    states = hidden[:, :-1][mask]  # position t predicts token t + 1
    head = getattr(model, "module", model).get_output_embeddings().weight
    student = student_topk_logits(states, head, batch["kd_ids"][mask])
    return kd_loss(student, batch["kd_logits"][mask], distill.kind, beta=distill.beta,
                   temperature=distill.temperature)  # fmt: skip


def _split_nll(
    logps: torch.Tensor, mask: torch.Tensor, is_sfim: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Unweighted token-mean NLL of the SFT rows and of the SFIM rows, for the log."""

    def part(rows: torch.Tensor) -> torch.Tensor | None:
        return token_nll(logps[rows], mask[rows]) if rows.any() else None

    return part(~is_sfim), part(is_sfim)


def _contrast(
    logps: torch.Tensor, mask: torch.Tensor, batch: dict[str, Any], contrastive: Contrastive
) -> tuple[torch.Tensor, torch.Tensor]:
    """The configured objective over [chosen (G)..., rejected (R)...] rows."""
    n_groups, group = int(batch["num_groups"]), batch["group"]
    sums, means = sequence_logprob(logps, mask)
    beta = contrastive.beta
    if contrastive.loss == "infonce":
        return infonce_loss(means[:n_groups], means[n_groups:], group, beta)
    if contrastive.loss == "margin":
        return margin_loss(means[:n_groups][group], means[n_groups:], beta, contrastive.gamma)
    if contrastive.loss == "cpo":
        return cpo_loss(sums[:n_groups][group], sums[n_groups:], beta)
    if "ref_chosen" not in batch:
        raise ValueError("dpo needs reference log-probs on every contrastive example")
    ref_chosen = batch["ref_chosen"].to(sums.dtype)[group]
    ref_rejected = batch["ref_rejected"].to(sums.dtype)
    return dpo_loss(sums[:n_groups][group], sums[n_groups:], ref_chosen, ref_rejected, beta)


@torch.no_grad()
def score_sequences(
    model: Any, sequences: Sequence[dict[str, list[int]]], pad_token_id: int, batch_size: int
) -> list[tuple[float, float]]:
    """(sum, mean) of each sequence's completion-token log-probs under `model` as it is now:
    the round-start student's reference for dpo and its ranking of faults for `hardest`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = ExampleCollator(pad_token_id)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]["input_ids"]))
    scores: dict[int, tuple[float, float]] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([{"sft": sequences[i]} for i in chunk])
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        sums, means = sequence_logprob(*model_logprobs(model, batch))
        for i, total, mean in zip(chunk, sums.tolist(), means.tolist(), strict=True):
            scores[i] = (total, mean)
    model.train(was_training)
    return [scores[i] for i in range(len(sequences))]


# ------------------------------------------------------------------ the trainer
class DistillationTrainer(SFTTrainer):
    """`SFTTrainer` with `forward_losses` as its loss, on examples iterkd built itself (TRL's
    dataset preparation is skipped); logs nll, sfim, contrastive and margin averaged over the
    micro-batches of each logging interval (through SFTTrainer's metric log)."""

    loss_is_scaled_for_ga = False  # a per-micro-batch mean: Trainer divides by the GA steps

    def __init__(
        self, *args: Any, contrastive: Contrastive, distill: Distill | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.contrastive = contrastive
        self.distill = distill
        # detached tensors until the next log: `.item()` per micro-batch would sync the GPU
        self._pending: dict[str, list[torch.Tensor]] = defaultdict(list)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        terms = forward_losses(model, inputs, self.contrastive, self.distill)
        for name in ("nll", "sfim", "contrastive", "margin", "kd"):
            value = getattr(terms, name)
            if value is not None:
                self._pending[name].append(value.detach().float())
        return (terms.loss, None) if return_outputs else terms.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for name, values in self._pending.items():
            if values:
                self._metrics["train"][name].append(torch.stack(values).mean().item())
        self._pending.clear()
        super().log(logs, start_time)


class LogLastStep(TrainerCallback):
    """Log the final step even when it does not fall on `logging_steps` (`loss_last` is then
    the loss the checkpoint was trained to), and save no trainer checkpoint there: the stage
    saves the model itself, and optimizer state written then would never be resumed."""

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= state.max_steps:
            control.should_log = True
            control.should_save = False
        return control


# ------------------------------------------------------------------ model in, model out
def load_student(
    path: Path,
    adapter: str | Path | None,
    cfg: TrainConfig,
    *,
    seed: int,
    bf16: bool,
    tokenizer: Any = None,
) -> Any:
    """The model to train: a trainable LoRA (a new one, or `adapter` continued) or the full
    model, with the fused LM head. Seeded first: a new adapter's initial weights are random.
    Full fine-tuning grows the embeddings to `tokenizer` when SFIM added sentinels to it."""
    from peft import PeftModel

    set_seed(seed)
    # LoRA keeps its own weights in fp32 (peft's default), so a bf16 base is safe there; full
    # fine-tuning keeps fp32 master weights and gets bf16 from autocast only
    dtype = "bfloat16" if bf16 and cfg.method == "lora" else "float32"
    model = load_model(path, device="cpu", dtype=dtype, role="student")  # the Trainer moves it
    if cfg.method == "full":
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload() if adapter else model
        if tokenizer is not None:  # SFIM may have added sentinels to it
            grow_embeddings(model, len(tokenizer))
    add_fused_lm_head(model)  # before PEFT wraps the model (TRL's rule)
    if cfg.method == "lora":
        model = _with_lora(model, adapter, cfg)
    if cfg.compile:
        compile_layers(model)
    return model


def _with_lora(model: Any, adapter: str | Path | None, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

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


def compile_layers(model: Any) -> int:
    """`torch.compile` each decoder layer in place (regional compilation: one graph reused by
    every layer, compiled in seconds, and the fused LM head and loss stay eager)."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile()
    return len(layers)


def training_arguments(
    cfg: TrainConfig, output_dir: Path, *, seed: int, use_cpu: bool, bf16: bool
) -> SFTConfig:
    return SFTConfig(
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
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,  # the newest, and the one before in case the newest is torn
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=use_cpu,
        bf16=bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        # non-reentrant: works with frozen inputs (LoRA) without forcing their grads on
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,  # the collator reads every field of an example
        dataset_kwargs={"skip_prepare_dataset": True},  # examples come tokenized and labelled
        max_length=None,
        dataloader_num_workers=0,
        dataloader_pin_memory=not use_cpu,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )


def build_trainer(
    model: Any,
    examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    seed: int,
    output_dir: Path,
    tokenizer: Any,
    use_cpu: bool,
    bf16: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    sequential: bool = False,
    kd_targets: Sequence[dict[str, torch.Tensor]] | None = None,
) -> DistillationTrainer:
    """The trainer of `model` on `examples`. `sequential`: batches in the examples' order
    instead of a seeded shuffle (benchmarks). `kd_targets`: the teacher's top-k per KD row
    (an example's `kd_row` indexes it)."""
    distill = Distill.from_config(cfg)
    from datasets import Dataset

    args = training_arguments(cfg, output_dir, seed=seed, use_cpu=use_cpu, bf16=bf16)
    if sequential:
        args.train_sampling_strategy = "sequential"
    elif cfg.batching == "group_by_length":
        args.train_sampling_strategy = "group_by_length"
        examples = [e | {"length": example_length(e)} for e in examples]
    return DistillationTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(_uniform(examples)),
        data_collator=ExampleCollator(
            tokenizer.pad_token_id, kd_targets, distill.top_k if distill else 0
        ),
        processing_class=tokenizer,
        callbacks=[LogLastStep(), *callbacks],
        contrastive=Contrastive.from_config(cfg),
        distill=distill if kd_targets is not None else None,
    )


def train_student(
    model: Any, examples: Sequence[Example], cfg: TrainConfig, **kwargs: Any
) -> TrainOutcome:
    """Train `model` on `examples` (`build_trainer`'s keywords) and return it with its log;
    resumes from the newest complete trainer checkpoint in `output_dir` (the caller clears a
    folder of other inputs)."""
    trainer = build_trainer(model, examples, cfg, **kwargs)
    resume = last_complete_checkpoint(Path(kwargs["output_dir"]))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return TrainOutcome(
        model=trainer.model,
        steps=trainer.state.global_step,
        log=log_rows(trainer.state.log_history),
        resumed_from_step=_checkpoint_step(resume) if resume else 0,
    )


def example_length(example: Example) -> int:
    """The longest sequence an example puts in a batch (the batch is padded to the longest)."""
    if example.get("sft") is not None:
        return len(example["sft"]["input_ids"])
    return max(len(side["input_ids"]) for side in [example["chosen"], *example["rejected"]])


def _uniform(examples: Sequence[Example]) -> list[Example]:
    """Every example with every key (None where it has none): `Dataset.from_list` takes its
    columns from the first example."""
    keys = list(dict.fromkeys(k for example in examples for k in example))
    return [{k: example.get(k) for k in keys} for example in examples]


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer state was written (the Trainer writes it last);
    newer torn ones are removed so the Trainer's rotation does not count them."""
    if not output_dir.is_dir():
        return None
    found = sorted(
        (p for p in output_dir.iterdir() if p.name.startswith(CHECKPOINT_PREFIX)),
        key=_checkpoint_step,
        reverse=True,
    )
    for checkpoint in found:
        if _state_readable(checkpoint / "trainer_state.json"):
            return checkpoint
        shutil.rmtree(checkpoint)
    return None


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(suffix) if suffix.isdigit() else -1


def _state_readable(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


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

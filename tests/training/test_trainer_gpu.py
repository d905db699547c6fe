"""The trainer on a CUDA device: TRL's fused LM head takes its Triton path there (only the
labelled positions are scored), bf16 autocast and compiled decoder layers are on. Skipped where
no GPU is present (CI); run with `pytest -m gpu` on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iterkd.config import TrainConfig
from iterkd.training.losses import token_logprobs
from iterkd.training.trainer import (
    Contrastive,
    ExampleCollator,
    compile_layers,
    forward_losses,
    model_logprobs,
    train_student,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
VOCAB = 512


def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=VOCAB,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config).cuda()
    add_fused_lm_head(model)
    return model


def word_tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<eos>": 1} | {f"w{i}": i for i in range(2, VOCAB)}
    inner = Tokenizer(models.WordLevel(vocab=words, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="<pad>", eos_token="<eos>")


def examples(count: int, length: int) -> list[dict]:
    """SFT rows with an 8-token prompt, and pairs of (a row, another answer to its prompt)."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, VOCAB, (2 * count, length), generator=generator).tolist()
    rows = [{"input_ids": s, "labels": [-100] * 8 + s[8:]} for s in ids[:count]]
    faults = [row["input_ids"][:8] + s[8:] for row, s in zip(rows, ids[count:], strict=True)]
    sft = [{"sft": row, "weight": 1.0, "objective": "sft"} for row in rows]
    pairs = [
        {"chosen": row, "rejected": [{"input_ids": f, "labels": [-100] * 8 + f[8:]}], "ref": None}
        for row, f in zip(rows, faults, strict=True)
    ]
    return sft + pairs


def test_fused_log_probs_on_cuda_match_the_full_logits():
    model = small_llama()
    batch = {
        k: v.cuda() if torch.is_tensor(v) else v
        for k, v in ExampleCollator(0)(examples(4, 64)).items()
    }
    with torch.no_grad():
        fused, mask = model_logprobs(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference, reference_mask = token_logprobs(logits.float(), batch["labels"])
    assert torch.equal(mask, reference_mask)
    torch.testing.assert_close(fused.float(), reference, rtol=1e-4, atol=1e-4)


def test_bf16_training_with_compiled_layers_lowers_the_loss(tmp_path: Path):
    model = small_llama()
    assert compile_layers(model) == 2
    data = examples(8, 64)
    cfg = TrainConfig(
        method="full",
        learning_rate=3e-3,
        lr_scheduler="constant",
        batch_size=8,
        max_steps=30,
        bf16=True,
        compile=True,
    )
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in ExampleCollator(0)(data).items()}
    contrastive = Contrastive.from_config(cfg)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        before = forward_losses(model, batch, contrastive)
    outcome = train_student(
        model,
        data,
        cfg,
        seed=0,
        output_dir=tmp_path,
        tokenizer=word_tokenizer(),
        use_cpu=False,
        bf16=True,
    )
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        after = forward_losses(model, batch, contrastive)
    assert outcome.steps == 30
    assert after.nll.item() < before.nll.item() - 1.0
    assert after.margin.item() > before.margin.item()

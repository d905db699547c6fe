"""The tiny models: the right architecture for vLLM's CPU backend, a chat template, determinism."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from iterkd.tiny_models import ARCHITECTURES, _new_model, build_tokenizer


def test_three_checkpoints_with_head_dim_64_and_a_manifest(tiny_models: Path) -> None:
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    for role in ("teacher", "student", "judge"):
        config = AutoConfig.from_pretrained(tiny_models / role)
        assert config.hidden_size // config.num_attention_heads == 64
        assert set(manifest["models"][role]["files"]) >= {"model.safetensors", "tokenizer.json"}
    assert (
        manifest["teacher_training"]["last_logged_loss"]
        < manifest["teacher_training"]["first_logged_loss"]
    )


def test_chat_template_ends_the_answer_with_eos(tiny_models: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "student")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "def f(): pass"}],
        tokenize=False,
    )
    assert text.startswith(tokenizer.bos_token)
    assert "<|assistant|>\ndef f(): pass" + tokenizer.eos_token in text


def test_tokenizer_and_initial_weights_are_deterministic() -> None:
    first, second = build_tokenizer(), build_tokenizer()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    a, b = _new_model("student", first, 0), _new_model("student", second, 0)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert set(ARCHITECTURES) == {"teacher", "student", "judge"}

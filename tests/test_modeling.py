"""Loading local checkpoints: clear errors, auto dtype, weight hashes, LoRA adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iterkd.modeling import (
    ModelLoadError,
    auto_device_and_dtype,
    load_model,
    load_tokenizer,
    model_identity,
    weights_hash,
)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"teacher path .*nope does not exist"):
        load_model(tmp_path / "nope", role="teacher")


def test_a_directory_without_config_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(tmp_path)


def test_missing_tokenizer_and_chat_template_are_named(tiny_models: Path, tmp_path: Path) -> None:
    copy = tmp_path / "student"
    shutil.copytree(tiny_models / "student", copy)
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="has no chat template"):
        load_tokenizer(copy, need_chat_template=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (copy / name).unlink()
    with pytest.raises(ModelLoadError, match="has no tokenizer"):
        load_tokenizer(copy)


def test_cpu_gets_float32_and_dtype_can_be_forced() -> None:
    assert auto_device_and_dtype("cpu") == ("cpu", torch.float32)
    assert auto_device_and_dtype("cpu", "bfloat16") == ("cpu", torch.bfloat16)
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        auto_device_and_dtype("cpu", "float7")


def test_weights_hash_follows_the_weights(tiny_models: Path, tmp_path: Path) -> None:
    copy = tmp_path / "student"
    shutil.copytree(tiny_models / "student", copy)
    first = weights_hash(copy)
    assert weights_hash(copy) == first
    model = load_model(copy)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(copy)
    assert weights_hash(copy) != first
    assert model_identity(copy).endswith(weights_hash(copy)[:16])


def test_lora_adapter_is_applied_on_top(tiny_models: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = load_model(tiny_models / "student")
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 2, 3, 4]])
    plain = load_model(tiny_models / "student")
    adapted = load_model(tiny_models / "student", adapter=tmp_path / "adapter")
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, adapted(ids).logits)
    with pytest.raises(ModelLoadError, match="not a PEFT adapter"):
        load_model(tiny_models / "student", adapter=tmp_path)

"""The model part of a promotion: a student checkpoint (a LoRA adapter on its base, or full
weights) written as a standalone Hugging Face directory that transformers and vLLM load as is.

The adapter is merged in float32 on the CPU, then the weights are cast to the dtype the base
declares: the merge's sums are exact whatever that dtype, and no GPU memory is taken from an
engine that may be running. (A 7B base needs ~28 GB of host memory for this.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from iterkd.modeling import ModelLoadError, check_tokenizer, load_model

_CHUNK = 1 << 20


def export_model(base: Path, adapter: Path | None, directory: Path) -> None:
    """`base` (+ `adapter` merged) into `directory`: safetensors weights, config, generation
    config and the tokenizer with its chat template."""
    model = _merged(base, adapter)
    directory.mkdir(parents=True)
    model.save_pretrained(directory, safe_serialization=True)
    _ensure_generation_config(model, directory)
    had_template = _save_tokenizer(base, directory)
    _check(directory, had_template)


def _merged(base: Path, adapter: Path | None) -> Any:
    import torch

    model = load_model(base, adapter=adapter, device="cpu", dtype="float32", role="student")
    if adapter is not None:
        model = model.merge_and_unload()  # plain transformers model: no peft needed to load it
    return model.to(getattr(torch, _declared_dtype(base)))


def _declared_dtype(path: Path) -> str:
    """The dtype the checkpoint's config.json names (`dtype`, or `torch_dtype` before
    transformers 5); float32 when it names none."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    if name not in ("float32", "float16", "bfloat16"):
        raise ModelLoadError(f"{path}/config.json: unexpected dtype {name!r}")
    return name


def _ensure_generation_config(model: Any, directory: Path) -> None:
    """save_pretrained writes the model's generation config when it has one; a model without
    one gets the config derived from its model config (eos, bos, pad ids)."""
    if (directory / "generation_config.json").is_file():
        return
    from transformers import GenerationConfig

    GenerationConfig.from_model_config(model.config).save_pretrained(directory)


def _save_tokenizer(source: Path, directory: Path) -> bool:
    """The source's tokenizer, saved as is (pad token untouched, unlike `load_tokenizer`).
    Returns whether it has a chat template, which the export must then keep."""
    from transformers import AutoTokenizer

    check_tokenizer(source, role="student")
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    tokenizer.save_pretrained(directory)
    return bool(getattr(tokenizer, "chat_template", None))


def _check(directory: Path, had_template: bool) -> None:
    """The export is only useful if it loads anywhere: safetensors only, config, tokenizer."""
    names = {p.name for p in directory.iterdir()}
    if not any(n.endswith(".safetensors") for n in names):
        raise ModelLoadError(f"{directory}: the export wrote no safetensors weights")
    if pickled := sorted(n for n in names if n.endswith((".bin", ".pt"))):
        raise ModelLoadError(f"{directory}: the export wrote pickled weights {pickled}")
    if "config.json" not in names:
        raise ModelLoadError(f"{directory}: the export wrote no config.json")
    check_tokenizer(directory, role="exported model", need_chat_template=had_template)


def weights_digest(directory: Path) -> str:
    """sha256 over the safetensors files (names and bytes) of an export."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()

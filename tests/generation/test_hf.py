"""The hf backend on the tiny models: batching does not change samples; limits are respected."""

from __future__ import annotations

from pathlib import Path

import pytest

from iterkd.generation import Message, Prompt, SamplingParams, generate
from iterkd.generation.hf import HFBackend


def chat(i: int, words: int = 3) -> Prompt:
    return Prompt(
        id=f"p{i}", messages=(Message(role="user", content="def f(x):\n" * (words + i % 4)),)
    )


@pytest.fixture(scope="module")
def student(tiny_models: Path) -> HFBackend:
    return HFBackend(tiny_models / "student", batch_size=8)


def texts(results: dict, prompts: list[Prompt]) -> list[list[str]]:
    return [[s.text for s in results[p.id]] for p in prompts]


def test_n_samples_per_prompt_with_token_counts(student: HFBackend) -> None:
    prompts = [chat(i) for i in range(3)]
    results, report = generate(student, prompts, SamplingParams(n=3, max_new_tokens=12))
    assert report.generated == 3 and report.from_cache == 0
    for prompt in prompts:
        samples = results[prompt.id]
        assert [s.index for s in samples] == [0, 1, 2]
        assert all(0 < s.completion_tokens <= 12 and s.prompt_tokens > 5 for s in samples)
    assert len({s.text for s in results["p0"]}) > 1  # sampled, not three copies


def test_samples_do_not_depend_on_batching_or_order(tiny_models: Path, student: HFBackend) -> None:
    prompts = [chat(i) for i in range(6)]
    params = SamplingParams(n=2, max_new_tokens=16, seed=7)
    first, _ = generate(student, prompts, params)
    other = HFBackend(tiny_models / "student", batch_size=3)
    second, _ = generate(other, list(reversed(prompts)), params)
    assert texts(first, prompts) == texts(second, prompts)
    third, _ = generate(student, prompts, SamplingParams(n=2, max_new_tokens=16, seed=8))
    assert texts(third, prompts) != texts(first, prompts)


def test_max_tokens_is_respected_when_eos_never_comes(student: HFBackend) -> None:
    results, report = generate(
        student, [chat(0)], SamplingParams(n=2, max_new_tokens=5, temperature=1.5)
    )
    assert all(s.completion_tokens <= 6 for s in results["p0"])
    assert report.hit_max_tokens == sum(s.finish_reason == "length" for s in results["p0"])


def test_stop_strings_end_the_text_before_them(student: HFBackend) -> None:
    prompt, params = [chat(1)], SamplingParams(n=1, max_new_tokens=24, temperature=1.0, seed=5)
    text = generate(student, prompt, params)[0]["p1"][0].text
    start = next(i for i in range(2, len(text) - 1) if text[i : i + 2].strip())
    stop = text[start : start + 2]
    cut, _ = generate(student, prompt, params.model_copy(update={"stop": (stop,)}))
    sample = cut["p1"][0]
    assert sample.text == text[: text.find(stop)]
    assert sample.finish_reason == "stop"


def test_too_long_prompts_are_skipped_or_truncated_and_counted(tiny_models: Path) -> None:
    long_prompt = Prompt(id="long", text="x = 1\n" * 2000)
    short = Prompt(id="short", text="def f():\n")
    params = SamplingParams(n=1, max_new_tokens=8)
    skipper = HFBackend(tiny_models / "student", on_long_prompt="skip")
    results, report = generate(skipper, [long_prompt, short], params)
    assert report.skipped_too_long == 1 and results["long"][0].finish_reason == "skipped"
    assert results["short"][0].finish_reason != "skipped"
    truncator = HFBackend(tiny_models / "student", on_long_prompt="truncate")
    results, report = generate(truncator, [long_prompt], params)
    assert report.truncated == 1 and results["long"][0].prompt_truncated
    assert results["long"][0].prompt_tokens == truncator.context - params.max_new_tokens


def test_empty_completions_are_counted(student: HFBackend) -> None:
    prompt, params = [chat(2)], SamplingParams(n=1, max_new_tokens=16, temperature=1.0, seed=9)
    text = generate(student, prompt, params)[0]["p2"][0].text
    start = next(i for i in range(len(text) - 1) if text[i : i + 2].strip())
    leading = text[: start + 2]  # the stop string sits at the very start of the answer
    results, report = generate(student, prompt, params.model_copy(update={"stop": (leading,)}))
    assert results["p2"][0].text == "" and report.empty_completions == 1


def test_an_unknown_long_prompt_policy_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="on_long_prompt='truncat': expected one of truncate, skip"
    ):
        HFBackend(tmp_path / "no-model-needed", on_long_prompt="truncat")

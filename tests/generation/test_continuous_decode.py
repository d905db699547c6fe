"""`decoder: continuous` (transformers' continuous batching behind the hf backend) on the tiny
teacher: greedy rows equal transformers' `generate`; sampled rows come n per prompt, end where
the model ends, and repeat for the same seed and rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from iterkd.generation import SamplingParams, generate
from iterkd.generation.hf import HFBackend
from iterkd.questions import load_bundled
from iterkd.stages.common import solve_prompt

PROMPTS = [solve_prompt(q) for q in load_bundled("seed")[:5]]


def samples(backend: HFBackend, params: SamplingParams) -> list[tuple[str, int, str]]:
    results, _ = generate(backend, PROMPTS, params)
    return [(s.text, s.completion_tokens, s.finish_reason) for p in PROMPTS for s in results[p.id]]


@pytest.fixture(scope="module")
def continuous(tiny_models: Path) -> HFBackend:
    return HFBackend(tiny_models / "teacher", batch_size=4, decoder="continuous")


def test_greedy_rows_equal_generate(continuous: HFBackend, tiny_models: Path) -> None:
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    reference = HFBackend(tiny_models / "teacher", batch_size=4, decoder="generate")
    expected = samples(reference, params)
    assert continuous.static is None
    assert samples(continuous, params) == expected
    assert continuous.engine_calls == 1  # every row in one scheduler call, not batch_size rows
    assert all("return" in text for text, *_ in expected)


def test_sampled_rows_repeat_for_the_same_seed(tiny_models: Path) -> None:
    # the random student (the teacher has memorised its answers: its samples barely differ)
    student = HFBackend(tiny_models / "student", decoder="continuous")
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=9)
    first = samples(student, params)
    assert len(first) == 3 * len(PROMPTS)
    assert len(set(first)) == len(first)  # every sample its own text
    assert samples(student, params) == first
    assert samples(student, params.model_copy(update={"seed": 10})) != first

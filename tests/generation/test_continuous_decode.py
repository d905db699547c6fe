"""`decoder: continuous` (transformers' continuous batching behind the hf backend) on the tiny
teacher: greedy rows equal transformers' `generate`; sampled rows come n per prompt, end where
the model ends, repeat for the same seed and rows, and follow the model's distribution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from scipy import stats

from iterkd.generation import Prompt, SamplingParams, generate
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


def test_sampled_first_tokens_follow_the_model_distribution(tiny_models: Path) -> None:
    """1000 samples of one prompt: their first tokens' texts against the model's softmax
    (chi-square), through the backend, so no top-k or other cut of transformers' defaults slips
    in."""
    student = HFBackend(tiny_models / "student", decoder="continuous")
    prompt = Prompt(id="p", text="x = 1\ny =")
    ids = student.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = student.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    # the random student is near uniform at 1.0: at 0.1 enough tokens are likely enough to test
    probs = torch.softmax(logits / 0.1, dim=-1).tolist()
    rows = 1000
    params = SamplingParams(n=rows, temperature=0.1, max_new_tokens=1, seed=4)
    results, _ = generate(student, [prompt], params)
    texts = [student.tokenizer.decode([t], skip_special_tokens=True) for t in range(len(probs))]
    expected: dict[str, float] = {}  # a sample is text: tokens with the same text are one cell
    for text, p in zip(texts, probs, strict=True):
        expected[text] = expected.get(text, 0.0) + p * rows
    seen = Counter(s.text for s in results["p"])
    likely = [text for text, e in expected.items() if e >= 5]  # the rest pooled in one cell
    observed = [seen[t] for t in likely] + [rows - sum(seen[t] for t in likely)]
    wanted = [expected[t] for t in likely] + [rows - sum(expected[t] for t in likely)]
    assert len(likely) >= 10
    assert stats.chisquare(observed, wanted).pvalue > 1e-3

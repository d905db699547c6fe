"""The static decode loop (`iterkd/generation/static_decode.py`) against transformers' `generate`
on the tiny models: the same samples for the same seeds, prefill once per prompt, early stop,
stop strings, the sampler's distribution, and the models it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from iterkd.generation import SamplingParams, generate
from iterkd.generation.hf import HFBackend
from iterkd.generation.static_decode import StaticDecoder, unsupported_reason
from iterkd.modeling import load_model
from iterkd.questions import load_bundled
from iterkd.stages.common import solve_prompt

# seed questions as the teacher stage asks them (the tiny teacher has learnt their answers, so
# greedy decoding writes real code); their lengths differ, so batches are left-padded
PROMPTS = [solve_prompt(q) for q in load_bundled("seed")[:7]]


def samples(backend: HFBackend, params: SamplingParams) -> list[tuple[str, int, str]]:
    results, _ = generate(backend, PROMPTS, params)
    return [(s.text, s.completion_tokens, s.finish_reason) for p in PROMPTS for s in results[p.id]]


@pytest.fixture(scope="module")
def backends(tiny_models: Path) -> dict[str, HFBackend]:
    path = tiny_models / "teacher"
    return {
        "generate": HFBackend(path, batch_size=8, decoder="generate"),
        "static": HFBackend(path, batch_size=8, decoder="static"),
        "auto": HFBackend(path, batch_size=8),
    }


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(n=1, temperature=0.0, max_new_tokens=48),
        SamplingParams(n=4, temperature=0.8, max_new_tokens=48, seed=3),
        SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=32, seed=11),
    ],
    ids=["greedy", "sampled", "top_p"],
)
def test_the_same_samples_as_generate(backends: dict[str, HFBackend], params) -> None:
    assert backends["auto"].static is not None  # the tiny Llama runs on the static loop
    assert backends["generate"].static is None
    expected = samples(backends["generate"], params)
    assert samples(backends["static"], params) == expected
    assert len(set(expected)) > 1 and all("return" in text for text, *_ in expected[:3])


def test_stop_strings_give_the_same_text_and_token_count(backends: dict[str, HFBackend]) -> None:
    probe = SamplingParams(n=2, temperature=1.0, max_new_tokens=48, seed=5)
    texts = [text for text, *_ in samples(backends["generate"], probe)]
    stop = next(t[3:5] for t in texts if len(t) > 6)  # a string the model really writes
    params = probe.model_copy(update={"stop": (stop,)})
    expected = samples(backends["generate"], params)
    assert any(reason == "stop" for *_, reason in expected)
    assert samples(backends["static"], params) == expected


class CountingModel(torch.nn.Module):
    """The model, recording the batch size of each forward pass."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.inner = model
        self.config, self.generation_config = model.config, model.generation_config
        self.device, self.dtype = model.device, model.dtype
        self.batches: list[int] = []

    def forward(self, **kwargs: Any) -> Any:
        self.batches.append(kwargs["input_ids"].shape[0])
        return self.inner(**kwargs)


def test_each_prompt_is_prefilled_once_and_finished_rows_stop_the_loop(
    tiny_models: Path, backends: dict[str, HFBackend]
) -> None:
    teacher = backends["static"]
    model = CountingModel(load_model(tiny_models / "teacher", device="cpu"))
    eos = teacher.tokenizer.eos_token_id
    decoder = StaticDecoder(model, teacher.tokenizer.pad_token_id, [eos])
    prompts = [
        teacher.tokenizer(teacher.render(p), add_special_tokens=False)["input_ids"]
        for p in PROMPTS[:2]
    ]
    uniforms = torch.rand(2 * 5, 400, generator=torch.Generator().manual_seed(0))
    out = decoder.run(prompts, 5, uniforms, temperature=0.3, top_p=1.0)
    assert model.batches[0] == 2  # the prefill: one row per prompt, not per sample
    assert set(model.batches[1:]) == {10}  # then the 10 sampled rows
    ended = [row.index(eos) if eos in row else None for row in out.tolist()]
    assert all(e is not None for e in ended), "each row writes its answer and ends"
    assert len(model.batches) - 1 < 400  # stopped soon after every row had ended
    pad = teacher.tokenizer.pad_token_id
    for row, end in zip(out.tolist(), ended, strict=True):
        assert set(row[end + 1 :]) <= {pad}  # padded after the end


def test_the_first_token_follows_the_model_distribution(tiny_models: Path) -> None:
    """4000 rows of one prompt: their first tokens against the model's softmax (chi-square)."""
    model = load_model(tiny_models / "student", device="cpu")
    prompt = [1, 5, 6, 7, 8]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
    probs = torch.softmax(logits.double() / 0.1, dim=-1).numpy()  # the random student is near
    # uniform at the usual temperatures: 0.1 gives enough likely tokens to test
    rows = 4000
    uniforms = torch.rand(rows, 1, generator=torch.Generator().manual_seed(1))
    decoder = StaticDecoder(model, pad_id=0, eos_ids=[2])
    first = decoder.run([prompt], rows, uniforms, temperature=0.1, top_p=1.0)[:, 0].numpy()
    likely = probs * rows >= 5  # chi-square needs >= 5 expected per cell; the rest pooled
    observed = [*np.bincount(first, minlength=len(probs))[likely], (~likely[first]).sum()]
    expected = [*(probs[likely] * rows), probs[~likely].sum() * rows]
    assert likely.sum() >= 20
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_models_the_static_loop_refuses(tiny_models: Path) -> None:
    model = load_model(tiny_models / "student", device="cpu")
    assert unsupported_reason(model) is None
    model.generation_config.repetition_penalty = 1.3
    assert unsupported_reason(model) == "generation config sets repetition_penalty=1.3"
    model.generation_config.repetition_penalty = 1.0
    model.config._attn_implementation = "flex_attention"
    assert unsupported_reason(model) == "attention implementation 'flex_attention'"


def test_auto_keeps_generate_where_static_cannot_run_and_static_says_why(
    tiny_models: Path, tmp_path: Path
) -> None:
    import shutil

    path = tmp_path / "student"
    shutil.copytree(tiny_models / "student", path)
    config = (path / "generation_config.json").read_text()
    (path / "generation_config.json").write_text(
        config.replace('"bos_token_id"', '"repetition_penalty": 1.2,\n  "bos_token_id"')
    )
    assert HFBackend(path).static is None
    with pytest.raises(ValueError, match=r"decoder static cannot run generation config sets rep"):
        HFBackend(path, decoder="static")
    with pytest.raises(ValueError, match="decoder must be one of auto, static, generate"):
        HFBackend(path, decoder="fast")  # type: ignore[arg-type]


def test_eager_attention_gives_the_same_tokens_as_sdpa(tiny_models: Path) -> None:
    prompts = [[1, 5, 6, 7], [1, 8, 9]]
    uniforms = torch.rand(6, 12, generator=torch.Generator().manual_seed(2))
    outputs = []
    for implementation in ("sdpa", "eager"):
        model = load_model(tiny_models / "student", device="cpu")
        model.config._attn_implementation = implementation
        outputs.append(StaticDecoder(model, 0, [2]).run(prompts, 3, uniforms, 0.8, 1.0))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.gpu
def test_cuda_graph_steps_give_the_same_tokens_as_eager_steps(
    tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 8-position windows: a CUDA graph a window, all in one memory pool."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from iterkd.generation import static_decode

    monkeypatch.setattr(static_decode, "WINDOW", 8)
    model = load_model(tiny_models / "student", device="cuda", dtype="float32")
    prompts = [[1, 5, 6, 7], [1, 8, 9], [1, 4]]
    uniforms = torch.rand(12, 40, generator=torch.Generator().manual_seed(4))
    graphed = StaticDecoder(model, 0, [2])
    eager = StaticDecoder(model, 0, [2], cuda_graphs=False)
    first = graphed.run(prompts, 4, uniforms, 0.8, 1.0)
    assert graphed.graph_steps > 0
    assert torch.equal(first, eager.run(prompts, 4, uniforms, 0.8, 1.0))


@pytest.mark.gpu
def test_a_compiled_step_captured_as_a_cuda_graph_gives_the_tokens_of_an_eager_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from iterkd.generation import static_decode

    monkeypatch.setattr(static_decode, "WINDOW", 8)  # 6 windows, a graph each
    model = grouped_query_llama().cuda()
    prompts = [[1, 5, 6, 7], [1, 8, 9], [1, 4]]
    uniforms = torch.rand(12, 40, generator=torch.Generator().manual_seed(4))
    compiled = StaticDecoder(model, 0, [95], compile_step=True)
    eager = StaticDecoder(model, 0, [95], cuda_graphs=False)
    for temperature in (0.0, 0.8):
        found = compiled.run(prompts, 4, uniforms, temperature, 1.0)
        assert torch.equal(found, eager.run(prompts, 4, uniforms, temperature, 1.0))
    assert compiled.graph_steps > 0


def grouped_query_llama() -> Any:
    """A random-init Llama whose 6 query heads share 2 key/value heads (SmolLM2 shares 9 over 3)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=95, pad_token_id=0, attn_implementation="sdpa",
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_grouped_decode_attention_equals_sdpa_over_repeated_heads() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from iterkd.generation.static_decode import grouped_decode_attention

    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(5, 6, 1, 16, generator=generator)
    key, value = (torch.randn(5, 2, 20, 16, generator=generator) for _ in range(2))
    allowed = torch.rand(5, 1, 1, 20, generator=generator) > 0.3
    allowed[..., 0] = True
    grouped, _ = grouped_decode_attention(module, query, key, value, allowed, scaling=0.25)
    expected, _ = sdpa_attention_forward(module, query, key, value, allowed, scaling=0.25)
    assert grouped.shape == expected.shape == (5, 1, 6, 16)
    assert torch.allclose(grouped, expected, atol=1e-6)


def test_a_grouped_query_model_decodes_through_grouped_attention_to_the_tokens_of_generate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import AttentionInterface

    from iterkd.generation import static_decode

    model = grouped_query_llama()
    decode_calls = []

    def counting(module: Any, query: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        decode_calls.append(query.shape[2] == 1)
        return static_decode.grouped_decode_attention(module, query, *args, **kwargs)

    monkeypatch.setitem(
        AttentionInterface._global_mapping, static_decode.GROUPED_ATTENTION, counting
    )
    prompts = [[1, 5, 6, 7, 8], [1, 9, 10], [1, 4, 4, 30]]
    out = StaticDecoder(model, 0, [95]).run(prompts, 1, torch.zeros(3, 12), 0.0, 1.0)
    assert any(decode_calls) and model.config._attn_implementation == "sdpa"  # put back
    ids = torch.tensor([[0] * (5 - len(p)) + p for p in prompts])
    expected = model.generate(
        input_ids=ids, attention_mask=(ids != 0).long(), do_sample=False, max_new_tokens=12,
        pad_token_id=0, eos_token_id=95,
    )[:, 5:]  # fmt: skip
    assert torch.equal(out, expected)
    assert len({tuple(row) for row in out.tolist()}) == 3  # the rows really differ
    monkeypatch.setattr(static_decode, "WINDOW", 4)  # each step reads 4, 8, .. cached positions
    assert torch.equal(
        StaticDecoder(model, 0, [95]).run(prompts, 1, torch.zeros(3, 12), 0.0, 1.0), expected
    )
    monkeypatch.undo()
    decode_calls.clear()  # the switch benchmarks use for their baseline: transformers' sdpa
    plain = StaticDecoder(model, 0, [95], group_queries=False)
    assert torch.equal(plain.run(prompts, 1, torch.zeros(3, 12), 0.0, 1.0), expected)
    assert decode_calls == []


def test_a_compiled_step_gives_the_tokens_of_an_eager_one_over_batches_of_other_shapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`compile_step`: one graph with dynamic shapes serves a second batch of other rows and
    widths, and every cache window, without compiling again; greedy and sampled tokens equal
    the eager loop's."""
    from torch._dynamo.utils import counters

    from iterkd.generation import static_decode

    monkeypatch.setattr(static_decode, "WINDOW", 4)  # the window grows every 4 steps
    model = grouped_query_llama()
    batches = [
        ([[1, 5, 6, 7, 8], [1, 9, 10]], 2, torch.rand(4, 10, generator=torch.Generator().manual_seed(5))),
        ([[1, 4, 4, 30, 31, 2, 7], [1, 3], [1, 8, 8]], 3, torch.rand(9, 14)),
    ]  # fmt: skip
    compiled = StaticDecoder(model, 0, [95], compile_step=True)
    eager = StaticDecoder(model, 0, [95])
    graphs = [counters["stats"]["unique_graphs"]]
    for prompts, n, uniforms in batches:
        for temperature in (0.0, 0.8):
            found = compiled.run(prompts, n, uniforms, temperature, 1.0)
            assert torch.equal(found, eager.run(prompts, n, uniforms, temperature, 1.0))
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[0] + 1  # one graph for every window of the first batch
    assert graphs[2] == graphs[1]  # and the second batch compiled nothing


def test_compile_decode_needs_the_static_decoder(tiny_models: Path) -> None:
    from iterkd.config import ModelSpec

    with pytest.raises(ValueError, match="compile_decode needs the hf backend's static decoder"):
        ModelSpec(path="tiny:student", decoder="generate", compile_decode=True)
    with pytest.raises(ValueError, match="student: compile_decode needs the static decoder, not"):
        HFBackend(
            tiny_models / "student", decoder="continuous", compile_decode=True, role="student"
        )

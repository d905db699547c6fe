"""Milliseconds per step of the static decode loop for a random-init model of a real shape, with
and without grouped-query decode attention, cache windows, CUDA graphs and a compiled step, in
one process; then where an eager and a compiled step's GPU time goes (torch.profiler: a
20-step run minus a 4-step run, so the prefill and the cache's setup cancel). No checkpoint is
needed: a step's cost depends on the shapes, not on the weights, so SmolLM2's HumanEval n=10
workload is timed without carrying its GGUF.

    python3 benchmarks/bench_static_decode_gpu.py --shape smollm2     # 164 prompts x 10, 384 steps
    python3 benchmarks/bench_static_decode_gpu.py --shape llama-1b --prompts 64 --n 1 --steps 128

Rows never stop early (no end-of-turn token), so every variant runs all `--steps` steps; the
baseline is transformers' sdpa with CUDA graphs (the loop before grouped decode attention).
Prompt lengths spread evenly from a quarter of `--width` to `--width` (HumanEval's chat prompts
for SmolLM2: 89 to 443 tokens, mean 188), left-padded as the backend pads them.
"""

from __future__ import annotations

import argparse
import time

import torch

from iterkd.generation import static_decode
from iterkd.generation.static_decode import StaticDecoder

WHOLE_CACHE = 1 << 30  # a window no cache reaches: every step reads the whole cache (as before)

SHAPES = {
    # SmolLM2-135M-Instruct's config (GGUF metadata): 9 query heads over 3 key/value heads
    "smollm2": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    tie_word_embeddings=True),
    # bench_generation_gpu.py's ~1B Llama: 32 query heads over 4
    "llama-1b": dict(vocab_size=2048, hidden_size=2048, intermediate_size=5632,
                     num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4),
}  # fmt: skip
VARIANTS = {  # name: (group_queries, cuda_graphs, compile_step, cache window)
    "sdpa+graphs (before)": (False, True, False, WHOLE_CACHE),
    "grouped+graphs, whole cache": (True, True, False, WHOLE_CACHE),
    "grouped+graphs": (True, True, False, static_decode.WINDOW),
    "grouped, eager steps": (True, False, False, static_decode.WINDOW),
    "grouped+compiled+graphs": (True, True, True, static_decode.WINDOW),
}


def build(shape: str, width: int, steps: int, device: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=width + steps + 8,
                         attn_implementation="sdpa", pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    return model.eval()


def prompts_of(count: int, width: int, vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.linspace(max(1, width // 4), width, count).long().tolist()
    return [torch.randint(1, vocab, (n,), generator=generator).tolist() for n in lengths]


def seconds(decoder: StaticDecoder, prompts, n: int, uniforms: torch.Tensor, temperature: float):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = decoder.run(prompts, n, uniforms, temperature, 1.0)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, out


def kernel_times(decoder: StaticDecoder, prompts, n: int, uniforms: torch.Tensor) -> dict:
    """{kernel name: (GPU microseconds, launches)} of one eager run of `uniforms.shape[1]` steps
    (on CPU: operators and their own CPU time, for a smoke run)."""
    from torch.profiler import ProfilerActivity, profile

    gpu = torch.cuda.is_available()
    with profile(activities=[ProfilerActivity.CUDA if gpu else ProfilerActivity.CPU]) as prof:
        decoder.run(prompts, n, uniforms, 0.8, 1.0)
    found = {}
    for event in prof.key_averages():
        total = event.device_time_total if gpu else event.self_cpu_time_total
        if total > 0:
            found[event.key] = (total, event.count)
    return found


def profile_step(model, prompts, n: int, uniforms: torch.Tensor, compiled: bool,
                 rows: int = 12) -> None:  # fmt: skip
    """The top GPU kernels of one decode step without CUDA graphs: a run of 20 steps minus a run
    of 4, over 16 (what both runs share, the prefill and the cache's setup, cancels)."""
    decoder = StaticDecoder(model, 0, [], cuda_graphs=False, compile_step=compiled)
    short = kernel_times(decoder, prompts, n, uniforms[:, :4])
    long = kernel_times(decoder, prompts, n, uniforms[:, :20])
    per_step = {
        name: ((total - short.get(name, (0, 0))[0]) / 16, (count - short.get(name, (0, 0))[1]) / 16)
        for name, (total, count) in long.items()
    }
    step_us = sum(us for us, _ in per_step.values() if us > 0)
    kind = "compiled" if compiled else "eager"
    print(f"one {kind} decode step: {step_us / 1000:.2f} ms of device time; top kernels:")
    for name, (us, launches) in sorted(per_step.items(), key=lambda item: -item[1][0])[:rows]:
        print(f"  {us / 1000:7.3f} ms  {us / step_us:6.1%}  {launches:5.1f} launches  {name[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    parser.add_argument("--prompts", type=int, default=164)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--width", type=int, default=443)
    parser.add_argument("--steps", type=int, default=384)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--profile", action="store_true", help="also print the top kernels")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build(args.shape, args.width, args.steps, device)
    prompts = prompts_of(args.prompts, args.width, model.config.vocab_size)
    rows = args.prompts * args.n
    uniforms = torch.rand(rows, args.steps, generator=torch.Generator().manual_seed(2))
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"{name}: {args.shape}, {rows} rows ({args.prompts} prompts x {args.n}), prompts "
          f"{args.width // 4}-{args.width} tokens, {args.steps} steps, T={args.temperature}")  # fmt: skip
    outputs, base = {}, None
    for label in args.variants:
        grouped, graphs, compiled, static_decode.WINDOW = VARIANTS[label]
        decoder = StaticDecoder(model, 0, [], cuda_graphs=graphs, group_queries=grouped,
                                compile_step=compiled)  # fmt: skip
        warm, _ = seconds(decoder, prompts, args.n, uniforms[:, :8], args.temperature)
        took, outputs[label] = seconds(decoder, prompts, args.n, uniforms, args.temperature)
        base = base or took
        same = (outputs[label] == next(iter(outputs.values()))).float().mean().item()
        print(f"  {label:28s} {took:7.2f} s  {1000 * took / args.steps:7.2f} ms/step  "
              f"{rows * args.steps / took:9.0f} tok/s  {base / took:5.2f}x  "
              f"tokens equal to the first: {same:.1%}; warm-up (8 steps, compiling) {warm:.1f} s",
              flush=True)  # fmt: skip
    static_decode.WINDOW = VARIANTS["grouped+graphs"][3]
    if args.profile:
        for compiled in (False, True):
            profile_step(model, prompts, args.n, uniforms, compiled)


if __name__ == "__main__":
    main()

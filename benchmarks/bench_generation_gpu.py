"""hf backend tokens/s on a GPU for a ~1B random-init Llama (hidden 2048, 22 layers, 32 heads,
4 KV heads), at batch 1, 16, 64 and 256: the `generate` decoder (transformers' generate) beside
the `static` one (iterkd's fixed-shape loop with CUDA graphs), `static+compile` (the same with
its step compiled: `compile_decode`; the first pass pays the compile) and the `continuous` one
(transformers' continuous batching, `generate_batch`) on the same prompts, in the same
process, each as a fraction of the memory-bandwidth bound (each decode step reads every weight once; the device's bandwidth is
measured here with a large device-to-device copy). Prints a report; record it in RESULTS.md.

    python3 benchmarks/bench_generation_gpu.py [--tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

DECODERS = {  # the hf backend's decode paths, in one process: name -> HFBackend arguments
    "generate": {"decoder": "generate"},
    "static": {"decoder": "static"},
    "static+compile": {"decoder": "static", "compile_decode": True},
    "continuous": {"decoder": "continuous"},
}


def measured_bandwidth() -> float:
    """Bytes/s of a 4 GiB device-to-device copy, counting bytes read plus bytes written."""
    src = torch.empty(1 << 31, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 10 * 2 * src.numel() * 2 / (time.perf_counter() - start)


def build_model(out: Path, tokenizer) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    from iterkd.generation import Message, Prompt, SamplingParams
    from iterkd.generation.hf import HFBackend
    from iterkd.prompts import render
    from iterkd.questions import load_bundled
    from iterkd.tiny_models import build_tokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=list(DECODERS))
    args = parser.parse_args()
    bandwidth = measured_bandwidth()
    out = Path(tempfile.mkdtemp())
    params_count = build_model(out, build_tokenizer())
    questions = load_bundled("seed") * 2
    print(
        f"device: {torch.cuda.get_device_name()}, measured copy bandwidth {bandwidth / 1e12:.2f} TB/s"
    )
    print(
        f"model: {params_count / 1e9:.3f}B parameters, bf16; {args.tokens} new tokens per row, sampling"
    )
    for batch in args.batches:
        backends = {
            name: HFBackend(out, batch_size=batch, **DECODERS[name]) for name in args.decoders
        }
        prompts = [
            Prompt(
                id=f"{q.id}#{i}",
                messages=(Message(role="user", content=render("solve", prompt=q.prompt)),),
            )
            for i, q in enumerate((questions * (1 + batch // len(questions)))[: max(batch, 3)])
        ]
        params = SamplingParams(n=1, temperature=0.8, max_new_tokens=args.tokens, seed=batch)
        # the first pass over new shapes pays one-time costs (allocator, kernel choice, graph
        # capture): warm both paths at full length, then alternate and take medians
        runs: dict[str, list[float]] = {name: [] for name in args.decoders}
        for _ in range(3):
            for name, backend in backends.items():
                runs[name].append(tokens_per_s(backend, prompts, params))
        bound = batch * bandwidth / (2 * params_count)
        cells = []
        for name, values in runs.items():
            rate = statistics.median(values[1:])
            cells.append(
                f"{name} {rate:8.0f} tok/s ({rate / bound:.1%}, {rate / statistics.median(runs[args.decoders[0]][1:]):.2f}x)"
            )
        print(
            f"batch {batch:>3}: " + " | ".join(cells) + f" | bound {bound:8.0f} tok/s", flush=True
        )


def tokens_per_s(backend, prompts, params) -> float:
    """Completion tokens/s of one pass; nan where the decoder fails here (printed, not fatal:
    the other decoders' numbers still come)."""
    try:
        return ours_tokens_per_s(backend, prompts, params)
    except Exception as error:  # a benchmark reports, it does not stop
        print(f"  {backend.name}/{type(error).__name__}: {error}", flush=True)
        return float("nan")


def ours_tokens_per_s(backend, prompts, params) -> float:
    from iterkd.generation import generate

    torch.cuda.synchronize()
    start = time.perf_counter()
    _, report = generate(backend, prompts, params)
    torch.cuda.synchronize()
    return report.completion_tokens / (time.perf_counter() - start)


if __name__ == "__main__":
    main()

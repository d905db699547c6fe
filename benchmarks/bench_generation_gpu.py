"""hf backend tokens/s on a GPU for a ~1B random-init Llama (hidden 2048, 22 layers, 32 heads,
4 KV heads), at batch 1, 16 and 64, beside the raw `model.generate` on the same prompts and the
memory-bandwidth bound (each decode step reads every weight once; the device's bandwidth is
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
    for batch in (1, 16, 64):
        backend = HFBackend(out, batch_size=batch)
        prompts = [
            Prompt(
                id=f"{q.id}#{i}",
                messages=(Message(role="user", content=render("solve", prompt=q.prompt)),),
            )
            for i, q in enumerate(questions[: max(batch, 3)])
        ]
        params = SamplingParams(n=1, temperature=0.8, max_new_tokens=args.tokens, seed=batch)
        # the first pass over new shapes pays one-time costs (allocator, kernel choice): warm
        # both paths at full length, then alternate and take medians
        ours_runs, raw_runs = [], []
        for _ in range(3):
            ours_runs.append(ours_tokens_per_s(backend, prompts, params))
            raw_runs.append(raw_tokens_per_s(backend, prompts, batch, args.tokens))
        ours, raw = statistics.median(ours_runs[1:]), statistics.median(raw_runs[1:])
        bound = batch * bandwidth / (2 * params_count)
        print(f"batch {batch:>2}: iterkd hf backend {ours:8.0f} tok/s | raw model.generate {raw:8.0f} tok/s"
              f" | raw/iterkd {raw / ours:.3f}x | bandwidth bound {bound:8.0f} tok/s ({ours / bound:.1%} of it)")  # fmt: skip


def ours_tokens_per_s(backend, prompts, params) -> float:
    from iterkd.generation import generate

    torch.cuda.synchronize()
    start = time.perf_counter()
    _, report = generate(backend, prompts, params)
    torch.cuda.synchronize()
    return report.completion_tokens / (time.perf_counter() - start)


def raw_tokens_per_s(backend, prompts, batch: int, tokens: int) -> float:
    tok = backend.tokenizer
    texts = [backend.render(p) for p in prompts]
    generated, start = 0, time.perf_counter()
    for begin in range(0, len(texts), batch):
        enc = tok(
            texts[begin : begin + batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to("cuda")
        with torch.inference_mode():
            out = backend.model.generate(**enc, do_sample=True, temperature=0.8, max_new_tokens=tokens,
                                         pad_token_id=tok.pad_token_id)  # fmt: skip
        new = out[:, enc["input_ids"].shape[1] :]
        generated += int((new != tok.pad_token_id).sum())
    torch.cuda.synchronize()
    return generated / (time.perf_counter() - start)


if __name__ == "__main__":
    main()

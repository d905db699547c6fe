"""Overhead of iterkd's backend layer over the raw engine call, on the same prompts, in the same
process (hf: `model.generate` with HF's own sampling; vllm: `LLM.generate`), and cache-hit
throughput. Appends the results to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_generation.py [--prompts 32] [--n 4] [--tokens 64] [--no-record]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def prompts(count: int):
    from iterkd.generation import Message, Prompt
    from iterkd.prompts import render, template_hash
    from iterkd.questions import load_bundled

    questions = (load_bundled("seed") * 4)[:count]
    return [
        Prompt(id=f"{q.id}#{i}", messages=(Message(role="user", content=render("solve", prompt=q.prompt)),),
               template_hash=template_hash("solve"))
        for i, q in enumerate(questions)
    ]  # fmt: skip


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_hf(model_dir: Path, items, params, repeats: int) -> tuple[float, float]:
    import torch

    from iterkd.generation import generate
    from iterkd.generation.hf import HFBackend

    backend = HFBackend(model_dir, batch_size=16)
    rendered = [backend.render(p) for p in items]
    per_call = 16 // params.n

    def raw() -> None:
        tok = backend.tokenizer
        for start in range(0, len(rendered), per_call):
            batch = tok(
                rendered[start : start + per_call],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.inference_mode():
                backend.model.generate(**batch, do_sample=True, temperature=params.temperature,
                                       top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                                       num_return_sequences=params.n, pad_token_id=tok.pad_token_id)  # fmt: skip

    raw()  # warm up both paths once
    generate(backend, items, params)
    return median_time(raw, repeats), median_time(lambda: generate(backend, items, params), repeats)


def bench_vllm(model_dir: Path, items, params, repeats: int) -> tuple[float, float] | None:
    try:
        from vllm import SamplingParams as VSamplingParams
    except ImportError:
        return None
    from iterkd.generation import generate
    from iterkd.generation.vllm_engine import VLLMBackend

    backend = VLLMBackend(model_dir, max_model_len=1024)
    rendered = [backend.render(p) for p in items]
    sampling = VSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                               max_tokens=params.max_new_tokens, seed=params.seed)  # fmt: skip

    def raw() -> None:
        backend.llm.generate(rendered, sampling, use_tqdm=False)

    raw()
    generate(backend, items, params)
    return median_time(raw, repeats), median_time(lambda: generate(backend, items, params), repeats)


def bench_cache_hits(model_dir: Path, items, params) -> float:
    from iterkd.generation import GenerationCache, generate
    from iterkd.generation.hf import HFBackend

    backend = HFBackend(model_dir, batch_size=16)
    with tempfile.TemporaryDirectory() as tmp, GenerationCache(Path(tmp) / "c.jsonl") as cache:
        generate(backend, items, params, cache)
        many = items * 50  # the same prompts again and again: all hits
        start = time.perf_counter()
        _, report = generate(backend, many, params, cache)
        assert report.engine_calls == 0
        return len(many) / (time.perf_counter() - start)


def main() -> None:
    from iterkd.generation import SamplingParams
    from iterkd.tiny_models import ensure_tiny_models

    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    model = ensure_tiny_models() / "teacher"
    items = prompts(args.prompts)
    params = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.tokens, seed=0)
    tokens = args.prompts * args.n * args.tokens
    lines = [
        f"{args.prompts} seed prompts x n={args.n}, up to {args.tokens} new tokens, tiny teacher, median of {args.repeats}"
    ]
    for name, result in (("hf", bench_hf(model, items, params, args.repeats)),
                         ("vllm", bench_vllm(model, items, params, args.repeats))):  # fmt: skip
        if result is None:
            lines.append(f"{name}: not installed")
            continue
        raw, ours = result
        lines.append(f"{name}: raw engine {raw:.3f} s, iterkd backend {ours:.3f} s, ratio {ours / raw:.3f}x "
                     f"(at most {tokens / ours:.0f} new tokens/s)")  # fmt: skip
    lines.append(f"cache hits: {bench_cache_hits(model, items, params):.0f} prompts/s")
    report = "\n".join(lines)
    print(report)
    if not args.no_record:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        machine = (
            f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
        )
        argv = " ".join(sys.argv[1:])
        with open(RESULTS, "a") as f:
            f.write(f"\n## Generation: backend layer vs raw engine ({when})\n\n"
                    f"- command: `.venv/bin/python benchmarks/bench_generation.py {argv}`\n"
                    f"- machine: {machine}\n\n```\n{report}\n```\n")  # fmt: skip


if __name__ == "__main__":
    main()

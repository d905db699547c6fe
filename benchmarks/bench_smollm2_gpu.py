"""SmolLM2-135M-Instruct on HumanEval through iterkd's hf backend on a GPU: seconds and tokens/s
of the greedy pass (164 prompts) and of sampling (n per prompt), and the pass@1 the sandbox gives.

    python3 benchmarks/bench_smollm2_gpu.py --model DIR [--batch 1920] [--n 10] [--prompts 164] \
        [--decoders static continuous generate] [--sampled-with static continuous generate]

Each decoder of the hf backend (`static`: iterkd's fixed-shape loop; `static+compile`: the same
with its decode step compiled, `compile_decode`, the compile paid in its greedy pass;
`continuous`: transformers' continuous batching; `generate`: transformers' generate) runs the
greedy workload, and those in --sampled-with the sampled one, in one process.

Prints one line per workload and writes them to --out (JSON) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from iterkd.execution import Executor, SandboxConfig
from iterkd.generation.base import Job, SamplingParams
from iterkd.generation.hf import HFBackend
from iterkd.metrics import pass_at_k_with_interval
from iterkd.questions import load_benchmark
from iterkd.stages.common import solve_prompt, to_record


def workload(backend: HFBackend, questions, params: SamplingParams) -> dict:
    prompts = [solve_prompt(q) for q in questions]
    jobs = [Job(prompt=p, rendered=backend.render(p), seed=7) for p in prompts]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = dict(backend.generate(jobs, params))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    samples = [s for i in range(len(jobs)) for s in results[i]]
    tokens = sum(s.completion_tokens for s in samples)
    return {
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds),
        "samples": samples,
    }


def verdict_counts(questions, samples, n: int) -> list[tuple[int, int]]:
    by_id = {q.id: q for q in questions}
    records = [to_record(by_id[s.prompt_id], "student", s) for s in samples]
    programs = [by_id[r.question_id].to_program(r.code, r.id) for r in records if r.code.strip()]
    with Executor(SandboxConfig(timeout_s=10)) as executor:
        passed = {v.program_id for v in executor.run(programs) if v.passed}
    return [(n, sum(f"{q.id}/student/{i}" in passed for i in range(n))) for q in questions]


DECODERS = {  # name -> HFBackend arguments; `static+compile` compiles in its first (greedy) pass
    "static": {"decoder": "static"},
    "static+compile": {"decoder": "static", "compile_decode": True},
    "continuous": {"decoder": "continuous"},
    "generate": {"decoder": "generate"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=1920)
    parser.add_argument(
        "--decoders", nargs="+", choices=DECODERS, default=["static", "continuous", "generate"]
    )
    parser.add_argument(
        "--sampled-with", nargs="+", choices=DECODERS, default=["static", "continuous", "generate"]
    )
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=164)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--out", default="bench_smollm2_gpu.json")
    args = parser.parse_args()
    questions = load_benchmark("humaneval")[: args.prompts]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    lines: dict = {"device": device, "batch": args.batch, "prompts": len(questions)}
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
    sampled = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=1)
    for decoder in args.decoders:
        backend = HFBackend(args.model, batch_size=args.batch, **DECODERS[decoder])
        for name, params in (("greedy", greedy), (f"sampled_n{args.n}", sampled)):
            if params.n > 1 and decoder not in args.sampled_with:
                continue
            try:
                result = workload(backend, questions, params)
            except Exception as error:  # report it, keep the other lines
                lines[f"{decoder}/{name}"] = f"{type(error).__name__}: {error}"
                print(f"{decoder}/{name} failed: {error}", flush=True)
                continue
            counts = verdict_counts(questions, result.pop("samples"), params.n)
            result["pass@1"] = pass_at_k_with_interval(counts, 1)
            if params.n >= 10:
                result["pass@10"] = pass_at_k_with_interval(counts, 10)
            lines[f"{decoder}/{name}"] = result
            print(f"{decoder}/{name}", json.dumps(result), flush=True)
            Path(args.out).write_text(json.dumps(lines, indent=2))  # each line kept as it comes
        backend.close()


if __name__ == "__main__":
    main()

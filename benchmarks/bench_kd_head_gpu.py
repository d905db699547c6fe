"""The KD term's student side in isolation: the student's logits at the teacher's top-k ids, forward
and backward, by gathering k head columns a position (`gathered_topk_logits`, the trainer's path
until 2026-12-07) against the dense head a chunk of positions at a time (`chunked_topk_logits`,
the trainer's path on a GPU now). Same process, same inputs; fp32 master weights under bf16
autocast as in training. Pure torch: no wheel is needed on the device machine.

    python3 benchmarks/bench_kd_head_gpu.py            # bench_train_gpu.py's 1.1B Llama batch
    python3 benchmarks/bench_kd_head_gpu.py --shape smollm2

Prints milliseconds per forward + backward (median of --repeats), peak memory, and the largest
difference of the two paths' outputs and gradients.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iterkd.training.kd import chunked_topk_logits, gathered_topk_logits

SHAPES = {  # positions (batch x answer tokens), hidden, vocabulary
    "llama-1b": (8 * 2047, 2048, 32000),  # bench_train_gpu.py: batch 8 of 2048 tokens
    "smollm2": (16 * 1023, 576, 49152),  # configs/smollm2-pruned-gpu.yaml: batch 16, 1024
}


def timed(step: Callable[[], None], repeats: int, device: str) -> tuple[float, float]:
    """(median ms, peak GiB) of `step` after two untimed calls."""
    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=SHAPES, default="llama-1b")
    parser.add_argument("--top-k", type=int, default=32)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    positions, hidden_size, vocab = SHAPES[args.shape]
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(vocab, hidden_size, device=device) * 0.02)
    hidden = torch.randn(positions, hidden_size, device=device, requires_grad=True)
    ids = torch.randint(0, vocab, (positions, args.top_k), device=device)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(
        f"{name}: {args.shape}, {positions} positions, hidden {hidden_size}, vocab {vocab}, k {args.top_k}"
    )

    def run(path: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            weight.grad, hidden.grad = None, None
            with torch.autocast(device, dtype=torch.bfloat16):
                logits = path(hidden, weight, ids)
            logits.float().square().mean().backward()

        return step

    paths = {"gather (before)": gathered_topk_logits}
    for rows in args.chunks:
        paths[f"chunked {rows}"] = lambda h, w, i, rows=rows: chunked_topk_logits(h, w, i, rows)
    reference, baseline = None, None
    for label, path in paths.items():
        ms, peak = timed(run(path), args.repeats, device)
        grads = (hidden.grad.float().clone(), weight.grad.float().clone())
        baseline = baseline or ms
        if reference is None:
            reference = grads
        diff = max((a - b).abs().max().item() for a, b in zip(grads, reference, strict=True))
        print(
            f"  {label:18} {ms:9.2f} ms  {baseline / ms:5.2f}x  peak {peak:6.2f} GiB  grad diff {diff:.2e}"
        )


if __name__ == "__main__":
    main()

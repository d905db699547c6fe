"""Where the hf backend spends its time on a GPU, beside raw model.generate (a diagnostic, not a
benchmark): cProfile of both on the same batch."""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_generation_gpu import build_model

from iterkd.generation import Message, Prompt, SamplingParams, generate
from iterkd.generation.hf import HFBackend
from iterkd.tiny_models import build_tokenizer

out = Path(tempfile.mkdtemp())
build_model(out, build_tokenizer())
backend = HFBackend(out, batch_size=16)
prompts = [
    Prompt(id=str(i), messages=(Message(role="user", content="def f(x):\n" * (5 + i)),))
    for i in range(16)
]
params = SamplingParams(n=1, temperature=0.8, max_new_tokens=32)
generate(backend, prompts, params.model_copy(update={"seed": 1}))
texts = [backend.render(p) for p in prompts]
enc = backend.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
    "cuda"
)
backend.model.generate(
    **enc, do_sample=True, max_new_tokens=8, pad_token_id=backend.tokenizer.pad_token_id
)
for label, fn in (
    ("iterkd", lambda: generate(backend, prompts, params.model_copy(update={"seed": 2}))),
    (
        "raw",
        lambda: backend.model.generate(
            **enc, do_sample=True, max_new_tokens=32, pad_token_id=backend.tokenizer.pad_token_id
        ),
    ),
):
    torch.cuda.synchronize()
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    fn()
    torch.cuda.synchronize()
    profile.disable()
    print(f"==== {label}: {time.perf_counter() - start:.3f} s")
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)

"""Training throughput of iterkd's trainer against stock TRL `SFTTrainer`, on one GPU (and
several through `accelerate launch`).

The model is the ~1.1B Llama of TinyLlama's shape (hidden 2048, 22 layers, 32 heads, 4 KV heads,
intermediate 5632, vocab 32000), random-init, fp32 master weights with bf16 autocast, sequences
of 2048 random tokens, full fine-tuning unless the case says LoRA. Each case runs in its own
process (a fresh CUDA context and compile cache), warms up, then times `--steps` optimizer steps
with the device synchronised at each step's end.

    python benchmarks/bench_train_gpu.py --out DIR            # every single-GPU case, one table
    python benchmarks/bench_train_gpu.py --case NAME          # one case, prints one JSON line
    accelerate launch --multi_gpu --num_processes 2 benchmarks/bench_train_gpu.py --case NAME
    python benchmarks/bench_train_gpu.py --tiny --out DIR     # a CPU smoke run of the same code

Cases: `stock` (SFTTrainer with its defaults: gradient checkpointing on, batch 4), `iterkd-sft`
(iterkd's trainer, SFT rows only: TRL's fused LM head, regional torch.compile, no checkpointing,
batch 8), `iterkd-mixed` (SFT rows and contrastive pairs, 2 + 2 per batch: 6 sequences, margin
loss), `iterkd-lora` (as iterkd-sft with a LoRA r=16 on every linear layer), `iterkd-kd` (as
iterkd-sft plus token-level KD, forward KL, on every row against cached top-32 teacher targets:
random ids and logits of the teacher pass's shape; its cost over iterkd-sft is the KD term's).

MFU counts 6N + 6 * layers * hidden * sequence FLOPs per token (causal attention), every token
processed (a pair's chosen and rejected both), against 989 TFLOP/s (H100 SXM, dense bf16); with
these, stock SFTTrainer at 38.3k tokens/s is 27.7 % MFU, the reference point of issue 5. For LoRA
the same formula overstates the work (no weight gradients of the frozen layers): its MFU is
given for comparison only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEAK_FLOPS = {"cuda": 989e12, "cpu": 1e12}  # the CPU number only keeps the smoke run's output
CASES = ("stock", "iterkd-sft", "iterkd-mixed", "iterkd-lora", "iterkd-kd")
KD_TOP_K = 32
SHAPE = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "vocab_size": 512,
}


# ------------------------------------------------------------------ model, tokenizer, data
def build_model(shape: dict[str, int], seq: int, device: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, max_position_embeddings=seq, tie_word_embeddings=False)
    with torch.device(torch.cuda.current_device() if device == "cuda" else device):
        return LlamaForCausalLM(config)


def build_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer over `vocab` ids: the trainers only need its pad and eos."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<eos>": 1} | {f"w{i}": i for i in range(2, vocab)}
    inner = Tokenizer(models.WordLevel(vocab=words, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="<pad>", eos_token="<eos>")


def random_sequences(count: int, seq: int, vocab: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab, (count, seq), generator=generator).tolist()


def iterkd_examples(case: str, count: int, seq: int, vocab: int) -> list[dict[str, Any]]:
    """SFT rows (loss on every token, as stock SFTTrainer on the same data); for `mixed`,
    alternately an SFT row and a pair, so 4 examples in order make 2 rows + 2 pairs."""
    sequences = random_sequences(3 * count, seq, vocab, seed=1)

    def seq_dict(ids: list[int]) -> dict[str, list[int]]:
        return {"input_ids": ids, "labels": ids}

    if case == "iterkd-kd":  # every row carries its teacher targets (`kd_targets` index k)
        return [
            {"sft": seq_dict(s), "weight": 1.0, "objective": "sft", "kd_row": k}
            for k, s in enumerate(sequences[:count])
        ]
    if case != "iterkd-mixed":
        return [{"sft": seq_dict(s), "weight": 1.0, "objective": "sft"} for s in sequences[:count]]
    out = []
    for k in range(count):
        if k % 2 == 0:
            out.append({"sft": seq_dict(sequences[k]), "weight": 1.0, "objective": "sft"})
        else:
            chosen, rejected = seq_dict(sequences[count + k]), seq_dict(sequences[2 * count + k])
            out.append({"chosen": chosen, "rejected": [rejected], "ref": None})
    return out


def kd_targets(count: int, seq: int, vocab: int) -> list[dict[str, torch.Tensor]]:
    """Random top-k teacher targets for `count` rows whose every token after the first is
    labelled: what `iterkd.training.kd.teacher_targets` writes, ids int32 and logits fp16."""
    generator = torch.Generator().manual_seed(2)
    return [
        {
            "ids": torch.randint(
                0, vocab, (seq - 1, KD_TOP_K), generator=generator, dtype=torch.int32
            ),
            "logits": torch.randn(seq - 1, KD_TOP_K, generator=generator).half(),
        }
        for _ in range(count)
    ]


# ------------------------------------------------------------------ timing
class StepTimer:
    """Wall time of each optimizer step, the device synchronised at its end."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback

        timer = self

        class Sync(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timer.ends.append(time.perf_counter())

        return Sync()

    def seconds(self, warmup: int) -> float:
        return self.ends[-1] - self.ends[warmup - 1]


def flops_per_token(model: Any, shape: dict[str, int], seq: int) -> float:
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 6 * shape["num_hidden_layers"] * shape["hidden_size"] * seq


# ------------------------------------------------------------------ the cases
def run_stock(args: argparse.Namespace, shape: dict[str, int], device: str) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    batch, steps = 4, args.warmup + args.steps
    model = build_model(shape, args.seq, device)
    data = random_sequences(batch * steps * world(), args.seq, shape["vocab_size"], seed=1)
    timer = StepTimer()
    config = SFTConfig(
        output_dir=str(args.work),
        per_device_train_batch_size=batch,
        max_steps=steps,
        max_length=args.seq,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        report_to=[],
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_dict({"input_ids": data}),
        processing_class=build_tokenizer(shape["vocab_size"]),
        callbacks=[timer.callback()],
    )
    trainer.train()
    tokens = batch * args.seq * args.steps
    return measured("stock", model, shape, args, timer, tokens, batch, device)


def run_iterkd(args: argparse.Namespace, shape: dict[str, int], device: str) -> dict[str, Any]:
    from trl.trainer.utils import add_fused_lm_head

    from iterkd.config import KDConfig, TrainConfig
    from iterkd.training.trainer import compile_layers, train_student

    case = args.case
    batch, steps = 8 if case != "iterkd-mixed" else 4, args.warmup + args.steps
    cfg = TrainConfig(
        method="lora" if case == "iterkd-lora" else "full",
        kd=KDConfig(top_k=KD_TOP_K) if case == "iterkd-kd" else None,
        lora_r=16,
        lora_alpha=32,
        learning_rate=2e-5,
        lr_scheduler="constant",
        batch_size=batch,
        max_steps=steps,
        logging_steps=1000,
        save_steps=100_000,
        contrastive_weight=0.5 if case == "iterkd-mixed" else 0.0,
        bf16=device == "cuda",
        compile=device == "cuda" and not args.no_compile,
    )
    model = build_model(shape, args.seq, device)
    add_fused_lm_head(model)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    if cfg.compile:
        compile_layers(model)
    examples = iterkd_examples(case, batch * steps * world(), args.seq, shape["vocab_size"])
    timer = StepTimer()
    train_student(
        model,
        examples,
        cfg,
        seed=0,
        output_dir=args.work,
        tokenizer=build_tokenizer(shape["vocab_size"]),
        use_cpu=device == "cpu",
        bf16=cfg.bf16,
        callbacks=[timer.callback()],
        sequential=True,  # 2 rows + 2 pairs in every mixed batch, not a random mix
        kd_targets=kd_targets(len(examples), args.seq, shape["vocab_size"]) if cfg.kd else None,
    )
    sequences_per_batch = 6 if case == "iterkd-mixed" else batch
    tokens = sequences_per_batch * args.seq * args.steps
    return measured(case, model, shape, args, timer, tokens, batch, device)


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def measured(
    case: str,
    model: Any,
    shape: dict[str, int],
    args: argparse.Namespace,
    timer: StepTimer,
    tokens_per_process: int,
    batch: int,
    device: str,
) -> dict[str, Any]:
    seconds = timer.seconds(args.warmup)
    tokens_per_s = tokens_per_process * world() / seconds
    flops = flops_per_token(_base(model), shape, args.seq)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {
        "case": case,
        "processes": world(),
        "batch_per_process": batch,
        "seq": args.seq,
        "steps_timed": args.steps,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens_per_s, 1),
        "mfu": round(tokens_per_s * flops / (PEAK_FLOPS[device] * world()), 4),
        "peak_memory_gib": None if peak is None else round(peak, 2),
        "params": sum(p.numel() for p in _base(model).parameters()),
    }


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# ------------------------------------------------------------------ driver
def run_case(args: argparse.Namespace) -> None:
    shape = TINY if args.tiny else SHAPE
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cuda":  # each process of a launch builds its model on its own GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    result = (
        run_stock(args, shape, device) if args.case == "stock" else run_iterkd(args, shape, device)
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print("RESULT " + json.dumps(result), flush=True)
    gc.collect()


def run_all(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for case in args.cases:
        command = [sys.executable, __file__, "--case", case, *_shared_flags(args, case)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        (args.out / f"{case}.log").write_text(done.stdout + done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(f"{case}: failed (exit {done.returncode}), see {case}.log", flush=True)
            continue
        result = json.loads(lines[-1].removeprefix("RESULT "))
        result["wall_s"] = round(time.perf_counter() - started, 1)
        results.append(result)
        print(json.dumps(result), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


def _shared_flags(args: argparse.Namespace, case: str) -> list[str]:
    flags = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--seq", str(args.seq)]
    # a fresh folder per case and run: the trainer would resume a checkpoint left there
    flags += ["--work", str(args.work / f"{case}-{os.getpid()}-{time.time_ns()}")]
    return flags + (["--tiny"] if args.tiny else []) + (["--no-compile"] if args.no_compile else [])


def table(results: list[dict[str, Any]]) -> str:
    stock = next((r for r in results if r["case"] == "stock"), None)
    lines = [
        "| case | processes | batch | tokens/s | x stock | MFU | peak GiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = f"{r['tokens_per_s'] / stock['tokens_per_s']:.2f}" if stock else "-"
        lines.append(
            f"| {r['case']} | {r['processes']} | {r['batch_per_process']} | "
            f"{r['tokens_per_s']:,.0f} | {ratio} | {100 * r['mfu']:.1f} % | {r['peak_memory_gib']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--out", type=Path, default=Path("bench-train-out"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/iterkd-bench-train"))
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=4, help="untimed first steps (compile)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: smoke run")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if args.case:
        run_case(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()

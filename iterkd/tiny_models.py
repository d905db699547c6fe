"""Tiny models for the tests and the embedded default: no model hub here, so iterkd builds its own.

`build_tiny_models(out)` writes three standalone Hugging Face checkpoints (`teacher/`, `student/`,
`judge/`), each with the same byte-level BPE tokenizer (trained with `tokenizers` on a frozen snapshot of
iterkd's own sources and the bundled seed set) and a chat template:
- Llama architecture with head_dim 64 (vLLM's CPU backend refuses smaller heads);
- the teacher is briefly fine-tuned (TRL SFT, loss on the answer only) on the seed set's reference
  solutions, so a real fraction of its answers pass the tests, and on a few of them in Lua (solve
  and translate prompts), for the Lua cycle; student and judge stay random.
Everything is seeded: the same machine builds the same files (the manifest records their hashes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

BUILD_VERSION = 3  # bump when anything below changes what is built
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
VOCAB_SIZE = 2048
CONTEXT = 1024
ARCHITECTURES: dict[str, dict[str, int]] = {
    # hidden = heads * 64
    "teacher": {"hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 2,
                "num_hidden_layers": 3, "intermediate_size": 384},
    "student": {"hidden_size": 64, "num_attention_heads": 1, "num_key_value_heads": 1,
                "num_hidden_layers": 2, "intermediate_size": 192},
    "judge": {"hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 2,
              "num_hidden_layers": 2, "intermediate_size": 384},
}  # fmt: skip
# 70 epochs: with the Lua rows, 50 left the teacher passing 0.71 of the seed set in Python (0.92
# before them); 70 gives 0.92 again (benchmarks/RESULTS.md, tiny models build 3)
TEACHER_TRAINING = {"epochs": 70, "learning_rate": 5e-3, "batch_size": 4}
# The teacher also learns the first LUA_QUESTIONS seed questions in Lua, asked both ways the Lua
# cycle asks (solve in Lua; translate the Python reference into Lua), with the hand-written
# solutions of iterkd/data/seed_lua.jsonl: configs/tiny-cpu-lua.yaml then has real passing Lua
# answers and translations to distill, not only failures.
LUA_QUESTIONS = 12


def default_dir() -> Path:
    """Where `iterkd tiny-models` builds by default (ITERKD_CACHE_DIR overrides the cache root)."""
    root = Path(os.environ.get("ITERKD_CACHE_DIR", Path.home() / ".cache" / "iterkd"))
    return root / f"tiny-models-v{BUILD_VERSION}"


def ensure_tiny_models(out: Path | None = None) -> Path:
    """The built models, building them first if they are not there (a finished build has its
    manifest; a half-written one is rebuilt)."""
    out = Path(out) if out is not None else default_dir()
    if not (out / "manifest.json").is_file():
        build_tiny_models(out)
    return out


# ---------------------------------------------------------------- tokenizer
def _corpus() -> list[str]:
    """A frozen snapshot of iterkd's own Python sources (58 files, taken at build version 2)
    plus the seed set's prompts and solutions. Frozen: with the live sources, every code change
    made other tiny models, and a machine with a cached build tested other models than CI."""
    from iterkd.questions import load_bundled

    snapshot = resources.files("iterkd.data").joinpath("tokenizer_corpus.json.gz").read_bytes()
    texts: list[str] = json.loads(gzip.decompress(snapshot))
    for question in load_bundled("seed"):
        texts += [question.prompt, question.reference_solution]
    return texts


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        model_max_length=CONTEXT,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------- models
def _new_model(role: str, tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
        **ARCHITECTURES[role],
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def _train_teacher(model, tokenizer, seed: int, workdir: Path) -> dict[str, Any]:
    """Fine-tune on (solve prompt -> reference solution) pairs of the seed set."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from iterkd.prompts import render
    from iterkd.questions import load_bundled

    rows = [
        _chat(render("solve", prompt=q.prompt), _without_docstrings(q.reference_solution))
        for q in load_bundled("seed")
    ]
    rows += _lua_rows()
    args = SFTConfig(
        output_dir=str(workdir),
        num_train_epochs=TEACHER_TRAINING["epochs"],
        per_device_train_batch_size=TEACHER_TRAINING["batch_size"],
        learning_rate=TEACHER_TRAINING["learning_rate"],
        lr_scheduler_type="cosine",
        warmup_steps=10,
        weight_decay=0.0,
        max_length=CONTEXT,
        seed=seed,
        data_seed=seed,
        save_strategy="no",
        report_to=[],
        logging_steps=50,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    started = time.monotonic()
    result = trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "seconds": round(time.monotonic() - started, 1),
        "steps": result.global_step,
        "first_logged_loss": losses[0] if losses else None,
        "final_train_loss": round(result.training_loss, 4),
        "last_logged_loss": losses[-1] if losses else None,
    }


def _chat(user: str, assistant: str) -> dict[str, list[dict[str, str]]]:
    return {
        "prompt": [{"role": "user", "content": user}],
        "completion": [{"role": "assistant", "content": assistant}],
    }


def _lua_rows() -> list[dict[str, list[dict[str, str]]]]:
    """(Lua solve prompt -> Lua solution) and (translate prompt -> the same solution), fenced
    as the prompts ask, for the first LUA_QUESTIONS seed questions."""
    from iterkd.localize import solve_text, translate_text
    from iterkd.questions import load_bundled

    text = resources.files("iterkd.data").joinpath("seed_lua.jsonl").read_text("utf-8")
    solutions = {r["question_id"]: r["solution"] for r in map(json.loads, text.splitlines())}
    rows = []
    for question in load_bundled("seed")[:LUA_QUESTIONS]:
        answer = f"```lua\n{solutions[question.id]}```\n"
        rows.append(_chat(solve_text(question, "lua"), answer))
        rows.append(_chat(translate_text(question, question.reference_solution, "lua"), answer))
    return rows


def _without_docstrings(source: str) -> str:
    """The answer the teacher learns: the solution without docstrings (half the tokens, and an
    answer needs none)."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(
                getattr(first, "value", None), ast.Constant
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


def _file_hashes(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def build_tiny_models(out: Path, seed: int = 0) -> dict[str, Any]:
    """Build into a temporary sibling and rename into place: a killed build leaves nothing half-made."""
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    torch.use_deterministic_algorithms(True)
    # one thread: the float reduction order, so the weights, do not depend on the core count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(out, staging, seed)
    finally:
        torch.set_num_threads(threads)


def _build(out: Path, staging: Path, seed: int) -> dict[str, Any]:
    tokenizer = build_tokenizer()
    manifest: dict[str, Any] = {"build_version": BUILD_VERSION, "seed": seed, "models": {}}
    for offset, role in enumerate(ARCHITECTURES):
        model = _new_model(role, tokenizer, seed + offset)
        if role == "teacher":
            manifest["teacher_training"] = _train_teacher(
                model, tokenizer, seed, staging / "_train"
            )
            shutil.rmtree(staging / "_train", ignore_errors=True)
        model.save_pretrained(staging / role, safe_serialization=True)
        tokenizer.save_pretrained(staging / role)
        params = sum(p.numel() for p in model.parameters())
        manifest["models"][role] = {"parameters": params, **ARCHITECTURES[role]}
    for role in ARCHITECTURES:
        manifest["models"][role]["files"] = _file_hashes(staging / role)
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return manifest


def measure_fractions(out: Path, n: int = 4, temperature: float = 0.8) -> dict[str, Any]:
    """Pass rates of teacher and student on both bundled sets, recorded in the manifest."""
    from iterkd.atomic import atomic_write_text
    from iterkd.execution import Executor, SandboxConfig

    params = {"n": n, "temperature": temperature, "max_new_tokens": 320, "seed": 0}
    fractions: dict[str, Any] = {"sampling": params}
    with Executor(SandboxConfig(timeout_s=10)) as executor:
        for role in ("teacher", "student"):
            for split in ("seed", "heldout"):
                fractions[f"{role}/{split}"] = _pass_fraction(out / role, split, params, executor)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["pass_fractions"] = fractions
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _pass_fraction(model_dir: Path, split: str, params: dict[str, Any], executor) -> float:
    from iterkd.codeblocks import extract_code
    from iterkd.generation import Message, Prompt, SamplingParams, generate
    from iterkd.generation.hf import HFBackend
    from iterkd.prompts import render, template_hash
    from iterkd.questions import load_bundled

    questions = load_bundled(split)
    prompts = [
        Prompt(
            id=q.id,
            messages=(Message(role="user", content=render("solve", prompt=q.prompt)),),
            template_hash=template_hash("solve"),
        )
        for q in questions
    ]
    samples, _ = generate(HFBackend(model_dir, batch_size=32), prompts, SamplingParams(**params))
    programs = [
        q.to_program(extract_code(s.text), f"{q.id}/{s.index}")
        for q in questions
        for s in samples[q.id]
    ]
    verdicts = executor.run(programs)
    return round(sum(v.passed for v in verdicts) / len(verdicts), 4)

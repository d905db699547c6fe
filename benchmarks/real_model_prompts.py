"""Parse rates of the judge, the question writer and the question-quality scorer on a real chat
model (docs/real-model.md): the package's prompts rendered for bundled seed questions, the model's
replies read by iterkd's parsers.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/real_model_prompts.py /tmp/smollm2-hf \
        --out /tmp/replies.json            # generate, parse, save every reply
    .venv/bin/python benchmarks/real_model_prompts.py --reparse /tmp/replies.json
                                           # the saved replies through today's parsers

a. judge: 5 seed questions x (reference, a `return None` stub, a mutated reference, a
   `raise NotImplementedError`), greedy as `feedback` asks (`judge_max_new_tokens`);
b. question writer: `per_bucket` requests per bucket from seed parents, sampled as `synthesize`
   asks (`temperature`, `max_new_tokens`);
c. quality: seed questions (question, tests, reference) and every candidate of b that parsed,
   greedy as `synthesize` asks (`quality_max_new_tokens`).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from iterkd.config import FeedbackConfig, SynthesisConfig
from iterkd.generation import GenerationCache, Prompt, SamplingParams, generate
from iterkd.generation.base import derive_seed
from iterkd.judge import judge_prompt, parse_judgement
from iterkd.questions import Question, load_bundled
from iterkd.records import FeedbackRecord, SampleRecord
from iterkd.synthesis import (
    Request,
    parse_candidate,
    plan_requests,
    quality_prompt,
    request_prompt,
)

JUDGED = 5  # seed questions judged, 4 answers each
QUALITY = 10  # seed questions scored by the quality rubric
PER_BUCKET = 6


def main() -> int:
    args = _args()
    if args.reparse:
        data = json.loads(Path(args.reparse).read_text())
        _report(data)
        return 0
    import torch

    from iterkd.generation.hf import HFBackend

    torch.set_num_threads(args.threads)
    backend = HFBackend(args.model, device="cpu", dtype="float32", batch_size=args.batch_size,
                        role="judge")  # fmt: skip
    seed = load_bundled("seed")
    data: dict[str, Any] = {"model": args.model}
    out = Path(args.out)
    with GenerationCache(out.with_suffix(".cache.jsonl")) as cache:  # a killed run resumes
        data["judge"] = _judge(backend, seed, cache)
        out.write_text(json.dumps(data, indent=1))
        data["synthesis"] = _synthesis(backend, seed, cache)
        out.write_text(json.dumps(data, indent=1))
        data["quality"] = _quality(backend, seed, data["synthesis"], cache)
        out.write_text(json.dumps(data, indent=1))
    _report(data)
    return 0


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="HF checkpoint folder (a chat model)")
    parser.add_argument("--out", default="real_model_replies.json")
    parser.add_argument("--reparse", help="a saved replies file: parse it again, no model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if not args.reparse and not args.model:
        parser.error("give a model folder, or --reparse FILE")
    return args


def _replies(
    backend: Any, prompts: list[Prompt], params: SamplingParams, what: str, cache: GenerationCache
) -> dict:
    started = time.monotonic()
    results, _ = generate(backend, prompts, params, cache)
    print(f"{what}: {len(prompts)} replies in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return {key: samples[0].text for key, samples in results.items()}


# ------------------------------------------------------------------ a. judge
def _judge(backend: Any, seed: list[Question], cache: GenerationCache) -> list[dict[str, Any]]:
    cfg = FeedbackConfig()
    samples = [
        (_sample(q, kind, code), kind) for q in seed[:JUDGED] for kind, code in _answers(q).items()
    ]
    by_id = {q.id: q for q in seed}
    prompts = [judge_prompt(by_id[s.question_id], s) for s, _ in samples]
    params = SamplingParams(n=1, temperature=cfg.judge_temperature,
                            max_new_tokens=cfg.judge_max_new_tokens)  # fmt: skip
    replies = _replies(backend, prompts, params, "judge", cache)
    return [{"id": s.id, "kind": kind, "reply": replies[s.id]} for s, kind in samples]


def _answers(question: Question) -> dict[str, str]:
    """A correct answer and three broken ones, made without knowing the task."""
    reference = question.reference_solution
    header = reference.split('"""')[0] + '"""' + reference.split('"""')[1] + '"""\n'
    return {
        "reference": reference,
        "stub": header + "    return None\n",
        "mutated": _mutated(reference),
        "not_implemented": header + "    raise NotImplementedError\n",
    }


_SWAPS: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.Mod: ast.FloorDiv,
}


class _Flip(ast.NodeTransformer):
    """The first comparison or arithmetic operator turned into another (an off-by-one kind of
    bug)."""

    def __init__(self) -> None:
        self.done = False

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not self.done and type(node) in _SWAPS:
            self.done = True
            return _SWAPS[type(node)]()
        return super().generic_visit(node)


def _mutated(source: str) -> str:
    tree = ast.parse(source)
    flip = _Flip()
    flip.visit(tree)
    if not flip.done:  # no operator to flip: the first returned value is off by one
        node = next(n for n in ast.walk(tree) if isinstance(n, ast.Return) and n.value)
        node.value = ast.BinOp(node.value, ast.Add(), ast.Constant(1))
    return ast.unparse(tree) + "\n"


def _sample(question: Question, kind: str, code: str) -> SampleRecord:
    return SampleRecord(
        id=f"{question.id}/{kind}", question_id=question.id, role="student", index=0, text=code,
        code=code, finish_reason="stop", prompt_tokens=0, completion_tokens=0,
    )  # fmt: skip


# ------------------------------------------------------------------ b. question writer
def _requests(seed: list[Question]) -> list[Request]:
    """PER_BUCKET requests per bucket; the first 12 seed questions as parents, 4 per bucket."""
    buckets = ("easy", "medium", "hard")
    feedback = [
        FeedbackRecord(
            question_id=q.id, attempts=4, passed=0, views={"tests": 0.0}, fused=0.0,
            bucket=buckets[i % 3], bucket_history=[buckets[i % 3]],
            failure_kinds={} if i % 3 == 0 else {"wrong_answer": 2},
        )
        for i, q in enumerate(seed[:12])
    ]  # fmt: skip
    per_bucket = dict.fromkeys(buckets, PER_BUCKET)
    return plan_requests(seed[:12], feedback, per_bucket, seed=0, round_index=0)


def _synthesis(backend: Any, seed: list[Question], cache: GenerationCache) -> list[dict[str, Any]]:
    cfg = SynthesisConfig()
    requests = _requests(seed)
    replies: dict[str, str] = {}
    for cycle in sorted({r.cycle for r in requests}):  # a parent asked again: another seed,
        prompts = [request_prompt(r, cfg.min_tests) for r in requests if r.cycle == cycle]
        params = SamplingParams(  # as the synthesize stage asks
            n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
            seed=0 if cycle == 0 else derive_seed(0, "cycle", cycle),
        )  # fmt: skip
        replies |= _replies(backend, prompts, params, f"synthesis cycle {cycle}", cache)
    return [
        {"id": r.id, "template": r.template, "operation": r.operation, "reply": replies[r.id]}
        for r in requests
    ]


# ------------------------------------------------------------------ c. question quality
def _quality(
    backend: Any, seed: list[Question], synthesis: list[dict[str, Any]], cache: GenerationCache
) -> list[dict[str, Any]]:
    cfg = SynthesisConfig()
    items = [
        (q.id, q.prompt, q.tests.asserts, q.tests.imports, q.reference_solution)
        for q in seed[12 : 12 + QUALITY]
    ]
    for row in synthesis:
        candidate = parse_candidate(row["reply"]).candidate
        if candidate is not None:
            items.append((row["id"], candidate.prompt, candidate.asserts, candidate.imports,
                          candidate.solution))  # fmt: skip
    prompts = [quality_prompt(*item) for item in items]
    params = SamplingParams(n=1, temperature=cfg.quality_temperature,
                            max_new_tokens=cfg.quality_max_new_tokens)  # fmt: skip
    replies = _replies(backend, prompts, params, "quality", cache)
    return [{"id": item[0], "reply": replies[item[0]]} for item in items]


# ------------------------------------------------------------------ report
def _report(data: dict[str, Any]) -> None:
    judged = [(row, *parse_judgement(row["reply"])) for row in data["judge"]]
    ok = [(row, scores) for row, scores, _ in judged if scores is not None]
    print(f"a. judge: {len(ok)}/{len(judged)} replies give a score")
    for kind in ("reference", "stub", "mutated", "not_implemented"):
        mine = [scores.overall for row, scores in ok if row["kind"] == kind]
        print(f"   {kind:16s} scores {sorted(mine)}")
    print("   why not:", dict(Counter(_code(error) for _, s, error in judged if s is None)))
    results = [(row, parse_candidate(row["reply"])) for row in data["synthesis"]]
    parsed = sum(result.candidate is not None for _, result in results)
    print(f"b. question writer: {parsed}/{len(results)} replies parse into question+tests+solution")
    codes = Counter(r.split(":")[0] for _, result in results for r in set(result.reasons))
    print("   rejections (replies per reason):", dict(codes.most_common()))
    notes = Counter(n.split(":")[0] for _, result in results for n in getattr(result, "notes", ()))
    print("   notes on parsed:", dict(notes))
    print("   screening funnel (no perplexity model, no judge):", _funnel(data["synthesis"]))
    quality = [(row, *parse_judgement(row["reply"])) for row in data["quality"]]
    scored = [scores.overall for _, scores, _ in quality if scores is not None]
    print(f"c. quality: {len(scored)}/{len(quality)} replies give a score: {sorted(scored)}")
    print("   why not:", dict(Counter(_code(error) for _, s, error in quality if s is None)))


def _funnel(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The synthesize stage's screening of the replies (sandboxed tests and coverage,
    near-duplicates of the seed set, contamination), without the model checks."""
    from iterkd.execution import SandboxConfig
    from iterkd.synthesis import FUNNEL, screen

    seed, requests = load_bundled("seed"), _requests(load_bundled("seed"))
    screened = screen(
        requests, {row["id"]: row["reply"] for row in rows}, cfg=SynthesisConfig(),
        sandbox=SandboxConfig(workers=2), known=seed, held_out=load_bundled("heldout"),
    )  # fmt: skip
    reached = [o.reached() for o in screened.outcomes]
    return {step: sum(r[step] for r in reached) for step in FUNNEL}


def _code(error: str | None) -> str:
    return (error or "").split(":")[0][:60]


if __name__ == "__main__":
    sys.exit(main())

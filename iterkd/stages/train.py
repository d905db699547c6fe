"""train: fine-tune the student on this round's verified teacher answers (SFT), with a contrastive
term that pushes its own failed answers below the teacher's correct ones (see iterkd.training).

in:  teacher/questions.jsonl, teacher/samples.jsonl, student/samples.jsonl, verify/verdicts.jsonl;
     the student after the previous round's train stage (a LoRA adapter is trained further)
out: checkpoint/ (the LoRA adapter; or, with `method: full`, the model and its tokenizer),
     train_log.jsonl (one line per logging step: loss, nll, contrastive, margin; no timings)

A round without any passed teacher answer trains nothing: no checkpoint, `checkpoint: none` and a
note in the summary, and the next round starts from the same student.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from iterkd.config import ModelSpec
from iterkd.generation.base import render_with_chat_template
from iterkd.generation.factory import resolve_model_path
from iterkd.modeling import auto_device_and_dtype, load_tokenizer
from iterkd.questions import Question
from iterkd.records import RecordError, SampleRecord, VerdictRecord, read_jsonl, write_jsonl
from iterkd.stages.common import (
    StageContext,
    StageError,
    round_questions,
    solve_prompt,
    student_spec,
)
from iterkd.training.data import (
    EncodeStats,
    Example,
    Pair,
    build_examples,
    select_pairs,
    select_sft_rows,
)

if TYPE_CHECKING:
    from iterkd.training.trainer import CheckpointKind, TrainOutcome

T = TypeVar("T", bound=BaseModel)


def run(ctx: StageContext) -> dict[str, Any]:
    questions = round_questions(ctx)
    rows, pairs = _select(ctx)
    if not rows:
        return _nothing(ctx, len(questions), "no teacher answer passed its tests: nothing to train")
    spec = student_spec(ctx, ctx.round - 1 if ctx.round else None)
    base = _base_path(spec)
    tokenizer = load_tokenizer(base, role="student", need_chat_template=True)
    prompts = _prompts(ctx, tokenizer, questions, rows)
    examples, stats = build_examples(tokenizer, prompts, rows, pairs, ctx.cfg.train.max_length)
    if not examples:
        note = "every selected answer's prompt fills max_length: nothing to train"
        return _nothing(ctx, len(questions), note, stats)
    ctx.log(f"training on {stats.sft_rows} rows and {stats.pairs} pairs")
    outcome, kind = _train(ctx, spec, base, tokenizer, examples)
    write_jsonl(ctx.out / "train_log.jsonl", outcome.log)
    return {
        "checkpoint": kind,
        "continued_adapter": spec.adapter is not None and kind == "adapter",
        "questions": len(questions),
        **_data_summary(stats),
        **_log_summary(outcome.steps, outcome.log),
    }


def _select(ctx: StageContext) -> tuple[list[SampleRecord], list[Pair]]:
    cfg = ctx.cfg.train
    teacher = _read(ctx.input_dir("teacher") / "samples.jsonl", SampleRecord)
    student = _read(ctx.input_dir("student") / "samples.jsonl", SampleRecord)
    verdicts = _read(ctx.input_dir("verify") / "verdicts.jsonl", VerdictRecord)
    passed = {v.sample_id: v.passed for v in verdicts}
    rows = select_sft_rows(teacher, passed, cfg.max_rows_per_question)
    # weight 0 is SFT only: pairs would cost a forward pass for a term multiplied by 0
    if cfg.contrastive_weight == 0:
        return rows, []
    return rows, select_pairs(rows, student, passed, cfg.max_pairs_per_question)


def _read(path: Path, model: type[T]) -> list[T]:
    try:
        return read_jsonl(path, model)
    except RecordError as exc:
        raise StageError(str(exc)) from None


def _base_path(spec: ModelSpec) -> Path:
    if spec.backend == "openai" or not spec.path:
        raise StageError("the student must be a local model to be trained (not an openai endpoint)")
    return resolve_model_path(spec.path)


def _prompts(
    ctx: StageContext, tokenizer: Any, questions: list[Question], rows: list[SampleRecord]
) -> dict[str, str]:
    """Each trained question's solve prompt, as the student's chat template renders it."""
    by_id = {q.id: q for q in questions}
    if missing := sorted({r.question_id for r in rows} - set(by_id)):
        raise StageError(f"teacher samples answer questions not in the pool: {missing[:5]}")
    where = f"{ctx.label}/{ctx.stage}"
    needed = dict.fromkeys(r.question_id for r in rows)
    return {
        qid: render_with_chat_template(tokenizer, solve_prompt(by_id[qid]), where) for qid in needed
    }


def _train(
    ctx: StageContext, spec: ModelSpec, base: Path, tokenizer: Any, examples: list[Example]
) -> tuple[TrainOutcome, CheckpointKind]:
    """Load, train and save; torch is imported here only (the data checks above stay cheap)."""
    from iterkd.training.trainer import load_student, save_checkpoint, torch_threads, train_student

    cfg = ctx.cfg.train
    device, _ = auto_device_and_dtype(spec.device)
    use_cpu = not device.startswith("cuda")
    bf16 = cfg.bf16 if cfg.bf16 is not None else not use_cpu
    with torch_threads(cfg.torch_threads):
        model = load_student(base, spec.adapter, cfg, seed=ctx.seed, bf16=bf16)
        outcome = train_student(
            model,
            examples,
            cfg,
            seed=ctx.seed,
            output_dir=ctx.run.cache_dir / ctx.label / "train-trainer",
            pad_token_id=tokenizer.pad_token_id,
            use_cpu=use_cpu,
            bf16=bf16,
        )
        kind = save_checkpoint(outcome.model, tokenizer, ctx.out / "checkpoint")
    return outcome, kind


def _data_summary(stats: EncodeStats) -> dict[str, Any]:
    return {
        "sft_rows": stats.sft_rows,
        "pairs": stats.pairs,
        "questions_with_rows": len(stats.questions_with_rows),
        "questions_with_pairs": len(stats.questions_with_pairs),
        "completion_tokens": stats.completion_tokens,
        "truncated": stats.truncated,
        "dropped_too_long": stats.dropped_too_long,
    }


def _log_summary(steps: int, log: list[dict[str, Any]]) -> dict[str, Any]:
    losses = [row["loss"] for row in log if row["loss"] is not None]
    margins = [row["margin"] for row in log if row["margin"] is not None]
    return {
        "steps": steps,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "margin_first": margins[0] if margins else None,
        "margin_last": margins[-1] if margins else None,
    }


def _nothing(
    ctx: StageContext, questions: int, note: str, stats: EncodeStats | None = None
) -> dict[str, Any]:
    """No training data: say so, write an empty log and no checkpoint (never fake data)."""
    ctx.log(note)
    write_jsonl(ctx.out / "train_log.jsonl", [])
    return {
        "checkpoint": "none",
        "continued_adapter": False,
        "questions": questions,
        **_data_summary(stats or EncodeStats()),
        **_log_summary(0, []),
        "note": note,
    }

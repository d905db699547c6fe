"""train: fine-tune the student on this round's verified teacher answers (SFT), with a contrastive
term that pushes its own failed answers below the teacher's correct ones (see iterkd.training).

in:  teacher/questions.jsonl, teacher/samples.jsonl, student/samples.jsonl, verify/verdicts.jsonl,
     translate/samples.jsonl + verdicts.jsonl (kept translations in the run's language);
     the student after the previous round's train stage (a LoRA adapter is trained further)
out: checkpoint/ (the LoRA adapter; or, with `method: full`, the model and its tokenizer),
     train_log.jsonl (one line per logging step: loss, nll, contrastive, margin; no timings)

With `train.replay_rows_per_question`, verified teacher answers of earlier rounds' questions that
this round's pool no longer holds are trained beside this round's rows (their questions, answers
and verdicts are read from those rounds' teacher, translate and verify outputs).

A round without any passed teacher answer trains nothing: no checkpoint, `checkpoint: none` and a
note in the summary, and the next round starts from the same student.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from iterkd.config import ModelSpec, TrainConfig
from iterkd.generation.base import render_with_chat_template
from iterkd.generation.factory import resolve_model_path
from iterkd.modeling import auto_device_and_dtype, load_model, load_tokenizer
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
    Encoder,
    EncodeStats,
    Example,
    Group,
    analyzer_scores,
    candidate_faults,
    contrast_examples,
    kd_examples,
    number_kd_rows,
    row_weights,
    select_groups,
    select_kd_rows,
    select_pairs,
    select_sft_rows,
    sfim_examples,
    sft_examples,
)
from iterkd.training.job import TrainJob
from iterkd.training.sfim import (
    choose_mode,
    ensure_fim_tokens,
    fim_tokens,
    format_fim,
    needs_new_fim_tokens,
    sfim_rows,
)

if TYPE_CHECKING:
    from iterkd.training.trainer import CheckpointKind

INPUTS = (
    ("teacher", "questions.jsonl"),
    ("teacher", "samples.jsonl"),
    ("student", "samples.jsonl"),
    ("verify", "verdicts.jsonl"),
    ("translate", "samples.jsonl"),
)
T = TypeVar("T", bound=BaseModel)


def run(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.train
    questions = round_questions(ctx)
    rows, faults, scores, kd_rows = _select(ctx)
    # replay keeps what was learnt beside this round's answers; it never trains alone
    replayed, earlier, replayed_scores = (
        _replayed(ctx, {q.id for q in questions}) if rows or kd_rows else ([], [], {})
    )
    scores |= replayed_scores
    if replayed:
        ctx.log(f"replaying {len(replayed)} verified rows of {len(earlier)} earlier questions")
    rows += replayed
    if not rows and not kd_rows:
        note = "no teacher answer passed its tests"
        note += (
            " and no answer for the KD term: nothing to train" if cfg.kd else ": nothing to train"
        )
        return _nothing(ctx, len(questions), note)
    spec = student_spec(ctx, ctx.round - 1 if ctx.round else None)
    base = _base_path(spec)
    tokenizer = load_tokenizer(base, role="student", need_chat_template=True)
    _add_fim_tokens(tokenizer, cfg)
    job = TrainJob(ctx.run.cache_dir / ctx.label / "train", _fingerprint(ctx, spec))
    # KD rows answer questions without a verified answer too: their prompts are needed as well
    prompts = _prompts(ctx, tokenizer, questions + earlier, rows + kd_rows)
    encoder = Encoder(tokenizer, prompts, cfg.max_length)
    examples, stats = job.cached_examples() or _examples(
        ctx, encoder, rows, faults, scores, spec, kd_rows
    )
    if not examples:
        note = "every selected answer's prompt fills max_length: nothing to train"
        return _nothing(ctx, len(questions), note, stats)
    job.keep_examples(examples, stats)
    _score_kd_targets(ctx, job, examples)
    ctx.log(f"training on {stats.sft_rows} rows, {stats.sfim_rows} SFIM rows, {stats.pairs} pairs"
            + (f", {stats.kd_only_rows} KD-only rows" if cfg.kd else ""))  # fmt: skip
    outcome, kind = _train(ctx, spec, base, tokenizer, examples, job)
    write_jsonl(ctx.out / "train_log.jsonl", outcome["log"])
    return {
        "checkpoint": kind,
        "continued_adapter": spec.adapter is not None and kind == "adapter",
        "questions": len(questions),
        "objective": _objective(cfg, stats),
        "kd": _kd_summary(cfg, examples, stats),
        "pairing": cfg.pairing,
        "replayed": {"rows": len(replayed), "questions": len(earlier)}
        if cfg.replay_rows_per_question
        else None,
        "processes": outcome["processes"],
        **_data_summary(stats),
        **_log_summary(outcome["steps"], outcome["log"]),
    }


def _select(
    ctx: StageContext,
) -> tuple[
    list[SampleRecord], dict[str, list[SampleRecord]], dict[str, list[float | None]],
    list[SampleRecord],
]:  # fmt: skip
    """SFT rows, each question's candidate faults (none when SFT only), analyzer scores and
    the KD-only rows (`train.kd.rows`: unverified teacher answers, student samples)."""
    cfg = ctx.cfg.train
    teacher, verdicts = _teacher_answers(ctx, ctx.round)
    student = _read(ctx.input_dir("student") / "samples.jsonl", SampleRecord)
    passed = {v.sample_id: v.passed for v in verdicts}
    scores = analyzer_scores(verdicts)
    rows = select_sft_rows(teacher, passed, cfg.max_rows_per_question)
    kd_rows: list[SampleRecord] = []
    if cfg.kd is not None:
        sources = {"unverified": teacher, "student": student}
        for name in [r for r in cfg.kd.rows if r in sources]:
            kd_rows += select_kd_rows(sources[name], passed, cfg.kd.max_rows_per_question)
    # weight 0 is SFT only: pairs would cost a forward pass for a term multiplied by 0
    if cfg.contrastive_weight == 0:
        return rows, {}, scores, kd_rows
    return rows, candidate_faults(rows, student, passed), scores, kd_rows


def _teacher_answers(
    ctx: StageContext, round_index: int | None
) -> tuple[list[SampleRecord], list[VerdictRecord]]:
    """A round's teacher answers and their verdicts; translations the translate stage kept in
    the run's language are verified teacher answers too."""
    teacher = _read(ctx.input_dir("teacher", round_index) / "samples.jsonl", SampleRecord)
    verdicts = _read(ctx.input_dir("verify", round_index) / "verdicts.jsonl", VerdictRecord)
    teacher += _read(ctx.input_dir("translate", round_index) / "samples.jsonl", SampleRecord)
    verdicts += _read(ctx.input_dir("translate", round_index) / "verdicts.jsonl", VerdictRecord)
    return teacher, verdicts


def _replayed(
    ctx: StageContext, pool: set[str]
) -> tuple[list[SampleRecord], list[Question], dict[str, list[float | None]]]:
    """Verified answers of earlier rounds' questions this round's pool no longer holds, each
    question's from the latest round that has one, with their questions and analyzer scores.
    Training only on what the student still fails made a pruned tiny student forget what it
    had mastered, round after round (docs/distillation.md)."""
    limit = ctx.cfg.train.replay_rows_per_question
    rows: list[SampleRecord] = []
    questions: dict[str, Question] = {}
    scores: dict[str, list[float | None]] = {}
    for index in range(ctx.round - 1, -1, -1) if limit else ():
        teacher, verdicts = _teacher_answers(ctx, index)
        passed = {v.sample_id: v.passed for v in verdicts}
        fresh = [
            r for r in select_sft_rows(teacher, passed, limit)
            if r.question_id not in pool and r.question_id not in questions
        ]  # fmt: skip
        if not fresh:
            continue
        asked = {
            q.id: q for q in _read(ctx.input_dir("teacher", index) / "questions.jsonl", Question)
        }
        questions |= {r.question_id: asked[r.question_id] for r in fresh}
        ids = {r.id for r in fresh}
        scores |= {k: v for k, v in analyzer_scores(verdicts).items() if k in ids}
        rows += fresh
    return rows, list(questions.values()), scores


def _add_fim_tokens(tokenizer: Any, cfg: TrainConfig) -> None:
    """SFIM's sentinels the tokenizer lacks are added (the full model's embeddings grow with
    it); a LoRA adapter cannot carry new embedding rows to vLLM and later rounds: refused."""
    if not (missing := needs_new_fim_tokens(tokenizer, cfg)):
        return
    if cfg.method == "lora":
        raise StageError(
            f"train.sfim_ratio > 0 needs the FIM sentinels {missing} in the student's tokenizer: "
            "set train.fim_tokens to its own (e.g. <|fim_prefix|> for Qwen2.5-Coder) or use "
            "train.method: full, which adds them and resizes the embeddings"
        )
    ensure_fim_tokens(tokenizer, None, fim_tokens(cfg))


def _examples(
    ctx: StageContext,
    encoder: Encoder,
    rows: list[SampleRecord],
    faults: dict[str, list[SampleRecord]],
    scores: dict[str, list[float | None]],
    spec: ModelSpec,
    kd_rows: list[SampleRecord],
) -> tuple[list[Example], EncodeStats]:
    """NLL rows (SFT, then SFIM), KD-only rows and contrastive examples, scored by the
    round-start student where the recipe needs it (hardest-first faults, dpo's reference)."""
    cfg, stats = ctx.cfg.train, EncodeStats()
    weights = (
        row_weights(rows, scores, cfg.sft_weight_floor) if cfg.sft_weighting != "none" else None
    )
    examples = sft_examples(encoder, rows, stats, weights)
    examples += sfim_examples(encoder, _sfim_items(ctx, rows), cfg.sfim_weight, stats)
    examples += kd_examples(encoder, kd_rows, stats)
    if cfg.kd is not None:
        number_kd_rows(examples, verified="verified" in cfg.kd.rows)
    if not any(faults.values()):
        return examples, stats
    logps = _score(ctx, encoder, rows, faults, spec) if _needs_scores(cfg) else {}
    rank = {k: mean for k, (_, mean) in logps.items()} if cfg.pairing == "hardest" else None
    groups = _groups(cfg, rows, faults, rank)
    reference = (
        {k: total for k, (total, _) in logps.items()} if cfg.contrastive_loss == "dpo" else None
    )
    examples += contrast_examples(encoder, groups, stats, reference)
    return examples, stats


def _needs_scores(cfg: TrainConfig) -> bool:
    return cfg.pairing == "hardest" or cfg.contrastive_loss == "dpo"


def _groups(
    cfg: TrainConfig,
    rows: list[SampleRecord],
    faults: dict[str, list[SampleRecord]],
    rank: dict[str, float] | None,
) -> list[Group]:
    cap = cfg.max_pairs_per_question
    if cfg.contrastive_loss == "infonce":
        return select_groups(rows, faults, cap, cfg.infonce_negatives, rank)
    return [(c, (r,)) for c, r in select_pairs(rows, faults, cap, rank)]


def _sfim_items(ctx: StageContext, rows: list[SampleRecord]) -> list[tuple[str, str, str]]:
    """(question id, context, middle) of the SFIM rows cut from the SFT rows' code."""
    cfg = ctx.cfg.train
    if cfg.sfim_ratio == 0:
        return []
    by_id = {r.id: r for r in rows}
    items = []
    for sample_id, split in sfim_rows([(r.id, r.code) for r in rows], cfg.sfim_ratio, ctx.seed):
        mode = choose_mode(
            random.Random(f"{ctx.seed}:{sample_id}:{split.node}"), cfg.sfim_spm_share
        )
        context, middle = format_fim(split, fim_tokens(cfg), mode)
        items.append((by_id[sample_id].question_id, context, middle))
    return items


def _score(
    ctx: StageContext,
    encoder: Encoder,
    rows: list[SampleRecord],
    faults: dict[str, list[SampleRecord]],
    spec: ModelSpec,
) -> dict[str, tuple[float, float]]:
    """(sum, mean) log-prob of every chosen and candidate answer under the round-start student,
    computed once (the examples keep them; no reference model stays in memory)."""
    from iterkd.training.trainer import load_student, score_sequences, torch_threads

    cfg = ctx.cfg.train
    samples = [*rows, *(s for group in faults.values() for s in group)]
    encoded = {s.id: e for s in samples if (e := encoder.answer(s)) is not None}
    device, _, bf16 = _device(ctx, spec)
    # one inference pass: compiling the layers would cost more than it saves
    scoring = cfg.model_copy(update={"compile": False})
    with torch_threads(cfg.torch_threads):
        model = load_student(_base_path(spec), spec.adapter, scoring, seed=ctx.seed, bf16=bf16)
        model.to(device)
        seqs = [e.as_dict() for e in encoded.values()]
        scores = score_sequences(model, seqs, encoder.tokenizer.pad_token_id, cfg.batch_size)
    del model
    ctx.log(f"scored {len(scores)} answers with the round-start student")
    return dict(zip(encoded, scores, strict=True))


def _score_kd_targets(ctx: StageContext, job: TrainJob, examples: list[Example]) -> None:
    """The teacher's top-k at every answer position of the KD rows, computed once into the
    job's folder (a resumed stage finds them there); the teacher is freed before training."""
    from iterkd.training.kd import TARGETS_FILE, save_targets, teacher_targets
    from iterkd.training.trainer import torch_threads

    kd = ctx.cfg.train.kd
    path = job.dir / TARGETS_FILE
    if kd is None or path.is_file():
        return
    sequences = [e["sft"] for e in sorted((e for e in examples if e.get("kd_row") is not None),
                                          key=lambda e: e["kd_row"])]  # fmt: skip
    teacher = _teacher_path(ctx)
    with torch_threads(ctx.cfg.train.torch_threads):
        model = load_model(teacher, device=ctx.cfg.models.teacher.device, role="teacher")
        targets = teacher_targets(model, sequences, kd.top_k, kd.score_batch_size)
    del model
    save_targets(path, targets)
    ctx.log(f"kd: the teacher's top-{kd.top_k} scored at {sum(len(t['ids']) for t in targets)} "
            f"positions of {len(targets)} rows")  # fmt: skip


def _teacher_path(ctx: StageContext) -> Path:
    """The teacher as a local model with the student's tokenizer (token-level KD compares
    distributions over one vocabulary)."""
    from iterkd.checks import tokenizer_mismatch

    teacher, student = ctx.cfg.models.teacher, student_spec(ctx, None)
    if teacher.backend == "openai" or not teacher.path:
        raise StageError("train.kd needs the teacher as a local model (not an openai endpoint)")
    teacher_path, student_path = resolve_model_path(teacher.path), _base_path(student)
    if problem := tokenizer_mismatch(teacher_path, student_path):
        raise StageError(f"train.kd: {problem}")
    return teacher_path


def _kd_summary(cfg: TrainConfig, examples: list[Example], stats: EncodeStats) -> dict | None:
    if cfg.kd is None:
        return None
    rows = sum(e.get("kd_row") is not None for e in examples)
    return {"kind": cfg.kd.kind, "rows": rows, "kd_only_rows": stats.kd_only_rows,
            "top_k": cfg.kd.top_k}  # fmt: skip


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
    language = ctx.cfg.language
    return {
        qid: render_with_chat_template(
            tokenizer, solve_prompt(by_id[qid], language, ctx.prompts), where
        )
        for qid in needed
    }


def _train(
    ctx: StageContext,
    spec: ModelSpec,
    base: Path,
    tokenizer: Any,
    examples: list[Example],
    job: TrainJob,
) -> tuple[dict[str, Any], CheckpointKind]:
    """Train in this process, or in `num_processes` through `accelerate launch`; torch is
    imported by the training modules only (the data checks above stay cheap)."""
    from iterkd.training.launch import LaunchError, launch, train_in_process

    cfg = ctx.cfg.train
    _, use_cpu, bf16 = _device(ctx, spec)
    tokenizer.save_pretrained(job.tokenizer_dir)
    job_spec = {
        "base": str(base),
        "adapter": str(spec.adapter) if spec.adapter else None,
        "train": cfg.model_dump(mode="json"),
        "seed": ctx.seed,
        "use_cpu": use_cpu,
        "bf16": bf16,
        "checkpoint_dir": str(ctx.out / "checkpoint"),
    }
    if cfg.num_processes == 1:
        outcome = train_in_process(job, job_spec, examples)
    else:
        job.write("job.json", job_spec)
        try:
            outcome = launch(job, cfg, ctx.run.path / "logs" / f"{ctx.label}-train-accelerate.log")
        except LaunchError as exc:
            raise StageError(str(exc)) from None
    if outcome["resumed_from_step"]:
        ctx.log(f"resumed from the trainer checkpoint of step {outcome['resumed_from_step']}")
    return outcome, outcome["kind"]


def _device(ctx: StageContext, spec: ModelSpec) -> tuple[str, bool, bool]:
    """(device, use_cpu, bf16) of the training."""
    device, _ = auto_device_and_dtype(spec.device)
    use_cpu = not device.startswith("cuda")
    bf16 = ctx.cfg.train.bf16 if ctx.cfg.train.bf16 is not None else not use_cpu
    return device, use_cpu, bf16


def _fingerprint(ctx: StageContext, spec: ModelSpec) -> str:
    """What the training is made of: its settings, the student it starts from, the seed and
    the bytes of its inputs. A trainer checkpoint of another fingerprint is never resumed."""
    digest = hashlib.sha256()
    settings = [ctx.cfg.train.model_dump(mode="json"), spec.model_dump(mode="json"), ctx.seed]
    if ctx.cfg.train.kd is not None:  # the KD targets are the teacher's
        settings.append(ctx.cfg.models.teacher.model_dump(mode="json"))
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for stage, name in INPUTS:
        digest.update((ctx.input_dir(stage) / name).read_bytes())
    return digest.hexdigest()


def _data_summary(stats: EncodeStats) -> dict[str, Any]:
    return {
        "sft_rows": stats.sft_rows,
        "sfim_rows": stats.sfim_rows,
        "pairs": stats.pairs,
        "negatives": stats.negatives,
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


def _objective(cfg: TrainConfig, stats: EncodeStats) -> str:
    """What the NLL rows were trained with; `kd` where only the KD term had rows (no teacher
    answer passed, yet its unverified answers still carry its distribution)."""
    if stats.pairs:
        return cfg.contrastive_loss
    return "sft" if stats.sft_rows or stats.sfim_rows else "kd"


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
        "objective": "none",
        "pairing": ctx.cfg.train.pairing,
        "processes": 0,
        **_data_summary(stats or EncodeStats()),
        **_log_summary(0, []),
        "note": note,
    }

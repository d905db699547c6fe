"""What every stage gets: a `StageContext` (its round, seed, output folder, the run's config and
the folders of the stages before it) and the few helpers several stages share."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from iterkd.codeblocks import EXTRACTION_STATUSES, extract_program
from iterkd.config import GenerationConfig, ModelSpec, RunConfig
from iterkd.execution.languages import LANGUAGES
from iterkd.generation import (
    GenerationCache,
    GenerationReport,
    Message,
    Prompt,
    Sample,
    SamplingParams,
    generate,
)
from iterkd.generation.factory import open_backend
from iterkd.localize import (
    PYTHON,
    dropped_summary,
    fence_tags,
    has_linter,
    localize_questions,
    missing_linter,
    solve_template,
    solve_text,
)
from iterkd.prompts import DEFAULT_PROMPTS, PromptFolderError, PromptSet
from iterkd.questions import Question
from iterkd.records import (
    RecordError,
    Role,
    SampleRecord,
    VerdictRecord,
    read_json,
    read_jsonl,
    write_jsonl,
)
from iterkd.rundir import RunDir, round_label, step_seed
from iterkd.verification import verify_samples


class StageError(RuntimeError):
    """A stage cannot do its work (missing input, bad data); the message says where."""


@dataclass(frozen=True)
class StageContext:
    run: RunDir
    cfg: RunConfig
    round: int | None  # None: the baseline evaluation before round 0
    stage: str
    out: Path  # the stage's `<stage>.tmp/` folder; renamed to `<stage>/` when the stage returns

    @property
    def label(self) -> str:
        return round_label(self.round)

    @property
    def seed(self) -> int:
        return step_seed(self.cfg.seed, self.round, self.stage)

    @cached_property
    def prompts(self) -> PromptSet:
        """The run's prompt templates (`prompts` in the config), read once per step."""
        try:
            return PromptSet.from_config(self.cfg.prompts)
        except PromptFolderError as exc:
            raise StageError(f"{self.label}/{self.stage}: {exc}") from None

    def input_dir(self, stage: str, round_index: int | str | None = "this") -> Path:
        """The complete output folder of an earlier step (this round's by default)."""
        index = self.round if round_index == "this" else round_index
        if not isinstance(index, int | None):
            raise TypeError(f"round index must be int or None, not {index!r}")
        directory = self.run.stage_dir(index, stage)
        if not (directory / "summary.json").is_file():
            raise StageError(f"{self.label}/{self.stage} needs {directory}, which is not complete")
        return directory

    def cache(self, name: str) -> GenerationCache:
        return GenerationCache(self.run.stage_cache(self.round, self.stage, name))

    def log(self, message: str) -> None:
        print(f"[{self.label}/{self.stage}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ questions
def round_questions(ctx: StageContext) -> list[Question]:
    """This round's pool, as the teacher stage froze it."""
    try:
        return read_jsonl(ctx.input_dir("teacher") / "questions.jsonl", Question)
    except RecordError as exc:
        raise StageError(str(exc)) from None


def localized(
    ctx: StageContext, questions: list[Question], what: str
) -> tuple[list[Question], dict[str, Any]]:
    """The questions as the run's language can ask them (all of them for Python), and for the
    summary what was left out; the details go to `language.jsonl` beside the stage's outputs."""
    if ctx.cfg.language == PYTHON:
        return questions, {}
    kept, dropped = localize_questions(questions, ctx.cfg.language)
    write_jsonl(ctx.out / "language.jsonl", dropped)
    counts = dropped_summary(dropped)
    if counts["untranslatable_questions"]:
        ctx.log(
            f"{counts['untranslatable_questions']} of {len(questions)} {what} questions have no "
            f"test that translates to {ctx.cfg.language}: left out (see language.jsonl)"
        )
    return kept, {"language": ctx.cfg.language, **counts}


# ------------------------------------------------------------------ models
def student_spec(ctx: StageContext, after_round: int | None) -> ModelSpec:
    """The student as it was after `after_round`'s train stage (None: the initial student). A
    round that trained nothing (no verified answer) hands on the student it started with."""
    spec = ctx.cfg.models.student
    for index in range(after_round, -1, -1) if after_round is not None else ():
        summary = read_json(ctx.input_dir("train", index) / "summary.json")
        kind = summary["checkpoint"]
        if kind == "none":
            continue
        checkpoint = str((ctx.run.stage_dir(index, "train") / "checkpoint").resolve())
        if kind == "adapter":
            return spec.model_copy(update={"adapter": checkpoint})
        return spec.model_copy(update={"path": checkpoint, "adapter": None})
    return spec


# ------------------------------------------------------------------ generation
def solve_prompt(
    question: Question, language: str = PYTHON, prompts: PromptSet = DEFAULT_PROMPTS
) -> Prompt:
    """The question as asked: Python's own prompt, or its translation for another language."""
    return Prompt(
        id=question.id,
        messages=(Message(role="user", content=solve_text(question, language, prompts)),),
        template_hash=prompts.template_hash(solve_template(language)),
    )


def sample_answers(
    ctx: StageContext,
    spec: ModelSpec,
    role: Role,
    questions: Sequence[Question],
    gen: GenerationConfig,
    cache_name: str,
) -> tuple[list[SampleRecord], dict[str, Any]]:
    """`gen.n` answers per question from the model in `spec`, through this step's cache."""
    params = SamplingParams(
        n=gen.n,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        seed=ctx.seed,
    )
    language = ctx.cfg.language
    prompts = [solve_prompt(q, language, ctx.prompts) for q in questions]
    results, counts = generate_once(ctx, spec, role, prompts, params, cache_name, ctx.stage)
    records = [to_record(q, role, s, language) for q in questions for s in results[q.id]]
    return records, {**counts, "extraction": extraction_counts(records)}


def generate_once(
    ctx: StageContext,
    spec: ModelSpec,
    role: str,
    prompts: Sequence[Prompt],
    params: SamplingParams,
    cache_name: str,
    description: str | None = None,
) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """Open the model's backend, answer `prompts` through this step's `cache_name` cache, close
    the backend: (samples by prompt key, the generation counts for the summary)."""
    backend = open_backend(spec, role)
    try:
        with (
            ctx.cache(cache_name) as cache,
            progress(len(prompts), description or cache_name) as bar,
        ):
            results, report = generate(backend, prompts, params, cache, progress=bar)
    finally:
        backend.close()
    return results, report_counts(ctx, cache_name, report)


# counts that depend on how the step went, not on its result: a resumed step finds part of its
# samples in the cache. They go to events.jsonl; summaries keep what the data decides.
RUN_DEPENDENT_COUNTS = frozenset({"from_cache", "generated", "engine_calls", "seconds"})


def report_counts(ctx: StageContext, name: str, report: GenerationReport) -> dict[str, Any]:
    """The generation report's result counts for the summary; the whole report as an event."""
    full = report.model_dump()
    ctx.run.event("generation", step=f"{ctx.label}/{ctx.stage}", name=name, **full)
    return {k: v for k, v in full.items() if k not in RUN_DEPENDENT_COUNTS}


def to_record(
    question: Question, role: Role, sample: Sample, language: str = PYTHON
) -> SampleRecord:
    """The answer as a record: the program to run is extracted with the question's prompt and
    entry point (the prompt as asked in `language`: its translation for another language)."""
    extraction = extract_program(
        sample.text,
        question.prompt,
        question.entry_point,
        fence_tags(language),
        sample.finish_reason,
    )
    return SampleRecord(
        id=f"{question.id}/{role}/{sample.index}",
        question_id=question.id,
        role=role,
        index=sample.index,
        text=sample.text,
        code=extraction.code,
        extraction=extraction.status,
        finish_reason=sample.finish_reason,
        prompt_tokens=sample.prompt_tokens,
        completion_tokens=sample.completion_tokens,
        prompt_truncated=sample.prompt_truncated,
    )


def extraction_counts(records: Iterable[SampleRecord]) -> dict[str, int]:
    """Answers by extraction outcome (ok, no_code, no_entry_point, ...), in the statuses' order;
    statuses no answer had are left out."""
    counts = count_by(r.extraction or "unknown" for r in records)
    order = [*EXTRACTION_STATUSES, "unknown"]
    return {status: counts[status] for status in order if status in counts}


@contextmanager
def progress(total: int, description: str):
    """A progress bar on a terminal (nothing otherwise); yields a callback taking a count."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="q", disable=None, leave=False) as bar:
        yield bar.update


def count_by(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


# ------------------------------------------------------------------ verification
def verify_answers(
    ctx: StageContext,
    samples: Sequence[SampleRecord],
    questions: Mapping[str, Question],
    analyze: bool = True,
) -> list[VerdictRecord]:
    """Run answers in the run's language, with its static view where one runs (ruff and pylint
    for Python, luacheck for Lua; none for the others)."""
    language = ctx.cfg.language
    analysis = ctx.cfg.analysis if analyze and has_linter(language) else None
    return verify_samples(samples, questions, ctx.cfg.sandbox, analysis, language)


def analysis_note(ctx: StageContext) -> dict[str, str]:
    """For a summary: which linter gave the static view, or why the view is absent."""
    language = ctx.cfg.language
    if language == PYTHON:
        return {}
    reason = missing_linter(language)
    linter = LANGUAGES[language].linter
    return {"static_analysis": f"absent: {reason}" if reason else f"{linter}"}

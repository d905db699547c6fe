"""Teacher texts -> screened outcomes: the synthesis funnel.

    requested -> generated -> parsed -> validated (tests + coverage) -> not_duplicate
      -> not_contaminated -> perplexity_ok -> quality_ok -> accepted

Each check is a plain function with one signature, `(outcomes, screening) -> None`, in
`FILTERS` (funnel step -> check); it writes its reasons into each outcome under its step. They
run cheapest first (`RUN_ORDER`), while the funnel is reported in its own order:
- the text checks (contamination, near-duplicates) and the sandbox run on every parsed
  candidate, so a rejected one carries all their reasons;
- the model checks (perplexity band, judge) run only on the candidates that passed everything
  before them: they cost a model, and the band is defined over the candidates reaching it.

Near-duplicates are checked against the known questions and, in request order, against this
batch's earlier candidates that passed the cheap checks (so the model checks never see two
near-copies). Such an earlier candidate may still fail the band or the judge; its near-copy is
dropped all the same, as it would very likely fare alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iterkd.config import SynthesisConfig
from iterkd.execution import SandboxConfig
from iterkd.generation import Prompt
from iterkd.prompts import DEFAULT_PROMPTS, PromptSet
from iterkd.questions import Question
from iterkd.synthesis.filters import ContaminationChecker, NearDuplicateIndex
from iterkd.synthesis.line_coverage import Coverage
from iterkd.synthesis.parse import Candidate, parse_candidate, to_question
from iterkd.synthesis.perplexity import perplexity_band
from iterkd.synthesis.quality import judge_quality, quality_prompt
from iterkd.synthesis.requests import Request
from iterkd.synthesis.validation import Reference, check_references

FUNNEL: tuple[str, ...] = (
    "requested", "generated", "parsed", "validated", "not_duplicate", "not_contaminated",
    "perplexity_ok", "quality_ok", "accepted",
)  # fmt: skip
CHECKS: tuple[str, ...] = FUNNEL[3:-1]  # the steps whose reasons a check writes

# texts -> log-perplexities, in order; prompts -> the judge's reply by prompt id (None: skipped)
Scorer = Callable[[Sequence[str]], list[float]]
Judge = Callable[[Sequence[Prompt]], Mapping[str, str | None]]


@dataclass
class Outcome:
    """What became of one request: the reasons of each funnel step (empty: passed)."""

    request: Request
    text: str
    candidate: Candidate | None = None
    reasons_at: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a rejection
    tests_kept: tuple[str, ...] = ()
    tests_dropped: tuple[str, ...] = ()
    coverage: Coverage | None = None
    log_perplexity: float | None = None
    quality: float | None = None  # the judge's overall score (None: not asked, or missing)
    question: Question | None = None

    @property
    def reasons(self) -> list[str]:
        """Every reason, in funnel order."""
        return [r for step in ("parsed", *CHECKS) for r in self.reasons_at.get(step, [])]

    def parsed(self) -> bool:
        return self.candidate is not None

    def alive(self) -> bool:
        """Parsed and not rejected by any check that ran so far."""
        return self.candidate is not None and not self.reasons

    def reached(self) -> dict[str, bool]:
        """Funnel step -> reached; each step needs every one before it."""
        steps = [True, bool(self.text.strip()), self.candidate is not None]
        steps += [not self.reasons_at.get(step) for step in CHECKS]
        steps.append(self.question is not None)
        reached, out = True, {}
        for name, ok in zip(FUNNEL, steps, strict=True):
            reached = reached and ok
            out[name] = reached
        return out


@dataclass
class Screening:
    """What the checks share: settings, indexes, models, and batch-level facts (`report`)."""

    cfg: SynthesisConfig
    sandbox: SandboxConfig
    index: NearDuplicateIndex
    contamination: ContaminationChecker
    perplexity: Scorer | None = None
    judge: Judge | None = None
    report: dict[str, Any] = field(default_factory=dict)
    prompts: PromptSet = DEFAULT_PROMPTS  # the run's templates (the judge's rubric)


@dataclass
class Screened:
    outcomes: list[Outcome]
    report: dict[str, Any]

    @property
    def accepted(self) -> list[Question]:
        return [o.question for o in self.outcomes if o.question is not None]


def screen(
    requests: Sequence[Request],
    texts: Mapping[str, str],
    *,
    cfg: SynthesisConfig,
    sandbox: SandboxConfig,
    known: Sequence[Question],
    held_out: Sequence[Question],
    perplexity: Scorer | None = None,
    judge: Judge | None = None,
    prompts: PromptSet = DEFAULT_PROMPTS,
) -> Screened:
    """Teacher texts -> outcomes, in request order (see the module docstring). Without a scorer
    or a judge, that check passes everything and the report says so."""
    outcomes = [_parsed(r, texts.get(r.id, "")) for r in requests]
    shape = (cfg.num_perm, cfg.shingle_size, cfg.shingle)
    index = NearDuplicateIndex(cfg.dedup_threshold, *shape)
    index.add_many((question.id, question.prompt) for question in known)
    contamination = ContaminationChecker(held_out, cfg.contamination_threshold, *shape)
    screening = Screening(cfg, sandbox, index, contamination, perplexity, judge, prompts=prompts)
    for step in RUN_ORDER:
        reaches = Outcome.alive if step in MODEL_CHECKS else Outcome.parsed
        FILTERS[step]([o for o in outcomes if reaches(o)], screening)
    for outcome in outcomes:
        if outcome.alive():
            outcome.question = _question(outcome)
    return Screened(outcomes, screening.report)


def _parsed(request: Request, text: str) -> Outcome:
    result = parse_candidate(text)
    outcome = Outcome(request, text, result.candidate, {"parsed": list(result.reasons)})
    outcome.notes += result.notes  # what was read leniently (e.g. tests after the solution)
    return outcome


def _question(outcome: Outcome) -> Question:
    request, candidate = outcome.request, _candidate(outcome)
    return to_question(
        candidate, question_id=request.id, parent=request.parent, bucket=request.bucket,
        tags=request.tags, asserts=outcome.tests_kept,
    )  # fmt: skip


def _candidate(outcome: Outcome) -> Candidate:
    assert outcome.candidate is not None  # the checks only see parsed outcomes
    return outcome.candidate


# ---------------------------------------------------------------- the checks
def check_tests(outcomes: Sequence[Outcome], screening: Screening) -> None:
    """MultiPL-T validation in the sandbox: failing asserts dropped, `min_tests`, coverage."""
    cfg = screening.cfg
    references = [_reference(o) for o in outcomes]
    checks = check_references(references, screening.sandbox, cfg.min_tests, cfg.min_coverage)
    for outcome in outcomes:
        check = checks[outcome.request.id]
        outcome.reasons_at["validated"] = list(check.reasons)
        outcome.tests_kept, outcome.tests_dropped = check.kept, check.dropped
        outcome.coverage = check.coverage
    screening.report["coverage"] = {
        "min_coverage": cfg.min_coverage,
        "measured": sum(o.coverage is not None for o in outcomes),
    }


def _reference(outcome: Outcome) -> Reference:
    candidate = _candidate(outcome)
    return Reference(
        outcome.request.id, candidate.solution, candidate.entry_point, candidate.asserts,
        candidate.imports,
    )  # fmt: skip


def check_duplicates(outcomes: Sequence[Outcome], screening: Screening) -> None:
    """Near-duplicates of a known question or of an earlier live candidate of the batch."""
    for outcome in outcomes:
        prompt = _candidate(outcome).prompt
        matches = screening.index.matches(prompt)
        outcome.reasons_at["not_duplicate"] = [
            f"near_duplicate: {key} (jaccard {j})" for key, j in matches
        ]
        if outcome.alive():
            screening.index.add(outcome.request.id, prompt)


def check_contamination(outcomes: Sequence[Outcome], screening: Screening) -> None:
    for outcome in outcomes:
        candidate = _candidate(outcome)
        reasons = screening.contamination.reasons(candidate.prompt, candidate.solution)
        outcome.reasons_at["not_contaminated"] = reasons


def check_perplexity(outcomes: Sequence[Outcome], screening: Screening) -> None:
    """The band over the log-perplexities of the candidates reaching it."""
    cfg = screening.cfg
    if screening.perplexity is None:
        screening.report["perplexity"] = {"model": None, "note": "no perplexity model: skipped"}
        return
    if not outcomes:  # the model is not even loaded
        screening.report["perplexity"] = {"model": cfg.perplexity_model, "scored": 0}
        return
    scores = screening.perplexity([perplexity_text(_candidate(o)) for o in outcomes])
    by_id = {o.request.id: s for o, s in zip(outcomes, scores, strict=True)}
    decision = perplexity_band(by_id, cfg.perplexity_mad_k, cfg.perplexity_min, cfg.perplexity_max)
    for outcome in outcomes:
        outcome.log_perplexity = by_id[outcome.request.id]
        outcome.reasons_at["perplexity_ok"] = decision.reasons[outcome.request.id]
    screening.report["perplexity"] = {"model": cfg.perplexity_model, **decision.band.as_dict()}


def perplexity_text(candidate: Candidate) -> str:
    """What the reference LM scores: the question, then the solution."""
    return candidate.prompt.rstrip() + "\n\n" + candidate.solution


def check_quality(outcomes: Sequence[Outcome], screening: Screening) -> None:
    """The judge's overall score against `quality_bar`; a missing score by `quality_missing`."""
    cfg = screening.cfg
    if screening.judge is None:
        screening.report["quality"] = {"judge": None, "note": "no judge configured: skipped"}
        return
    prompts = [_quality_prompt(o, screening.prompts) for o in outcomes]
    replies = screening.judge(prompts) if prompts else {}  # no candidate left: no judge loaded
    for outcome in outcomes:
        reply = replies.get(outcome.request.id)
        verdict = judge_quality(reply, cfg.quality_bar, cfg.quality_missing)
        outcome.quality = verdict.overall
        outcome.reasons_at["quality_ok"] = list(verdict.reasons)
        outcome.notes += verdict.notes
    scored = sum(o.quality is not None for o in outcomes)
    screening.report["quality"] = {
        "asked": len(prompts), "scored": scored, "missing": len(prompts) - scored,
        "quality_bar": cfg.quality_bar, "quality_missing": cfg.quality_missing,
    }  # fmt: skip


def _quality_prompt(outcome: Outcome, prompts: PromptSet) -> Prompt:
    candidate = _candidate(outcome)
    return quality_prompt(
        outcome.request.id, candidate.prompt, outcome.tests_kept, candidate.imports,
        candidate.solution, prompts,
    )  # fmt: skip


Check = Callable[[Sequence[Outcome], Screening], None]
FILTERS: dict[str, Check] = {  # funnel step -> its check
    "validated": check_tests,
    "not_duplicate": check_duplicates,
    "not_contaminated": check_contamination,
    "perplexity_ok": check_perplexity,
    "quality_ok": check_quality,
}
# cheapest first; dedup after validation: the batch's index takes only candidates valid so far
RUN_ORDER: tuple[str, ...] = (
    "not_contaminated", "validated", "not_duplicate", "perplexity_ok", "quality_ok",
)  # fmt: skip
MODEL_CHECKS = frozenset({"perplexity_ok", "quality_ok"})

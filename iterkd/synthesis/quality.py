"""The judge's view of a candidate question: a question-quality rubric (clarity, correctness of
the tests, usefulness) scored as one line `Score: N`, 1-10 (`synthesize_quality.jinja` of the
run's prompt folder), read with the judge parser of `iterkd.judge` (a JSON object, a `Score: N`
or `Overall: N` line, a lone `N/10`; out of range, conflicting or garbage is missing, never
coerced), so the score is on the scale of `quality_bar`.

Only the overall score decides; the rubric's criteria are named so the judge weighs them. A
missing score is handled by policy (`quality_missing`): `reject` (a reason) or `keep` (a note);
either way it is written down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from iterkd.generation import Message, Prompt
from iterkd.judge import parse_judgement
from iterkd.prompts import DEFAULT_PROMPTS, PromptSet

TEMPLATE = "synthesize_quality"
MissingPolicy = Literal["reject", "keep"]


@dataclass(frozen=True)
class QualityVerdict:
    overall: float | None  # None: no valid score (see `error`)
    error: str | None = None
    reasons: tuple[str, ...] = ()  # why it is rejected (empty: kept)
    notes: tuple[str, ...] = ()  # what is worth knowing about a kept one


def quality_prompt(
    prompt_id: str,
    question: str,
    asserts: Sequence[str],
    imports: Sequence[str],
    solution: str,
    prompts: PromptSet = DEFAULT_PROMPTS,
) -> Prompt:
    """The rubric prompt for one candidate: its question, kept tests and reference."""
    tests = "\n".join([*imports, *asserts])
    content = prompts.render(
        TEMPLATE, question=question.rstrip(), tests=tests.rstrip(), solution=solution.rstrip()
    )
    return Prompt(
        id=prompt_id,
        messages=(Message(role="user", content=content),),
        template_hash=prompts.template_hash(TEMPLATE),
    )


def judge_quality(reply: str | None, bar: float, missing: MissingPolicy) -> QualityVerdict:
    """The decision on one judge reply (None: the judge was not asked, e.g. the prompt is longer
    than its context); pure."""
    if reply is None:
        scores, error = None, "not judged: the prompt exceeds the judge's context"
    else:
        scores, error = parse_judgement(reply)
    if scores is not None:
        if scores.overall < bar:
            reason = f"low_quality: overall {scores.overall:g} < quality_bar {bar:g}"
            return QualityVerdict(scores.overall, reasons=(reason,))
        return QualityVerdict(scores.overall)
    if missing == "reject":
        return QualityVerdict(None, error, reasons=(f"quality_missing: {error}",))
    return QualityVerdict(None, error, notes=(f"quality_missing_kept: {error}",))

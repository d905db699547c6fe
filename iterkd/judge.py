"""The judge view: a rubric prompt per answer (`judge.jinja`), and a parser of the judge's reply
that never guesses.

    prompt = judge_prompt(question, sample)
    scores, error = parse_judgement(reply)   # (None, "why") when the reply holds no valid score

The prompt asks for one line, `Score: N`. A reply is read as a JSON (or Python dict) object with
an `overall` or `score` key first (what a larger model often writes anyway), then as text: an
`Overall: N` line, else a `Score: N` / `Rating: N` line (markdown emphasis, `=`, `is` or `of`
allowed: `**Score:** 7`, `the score is 7`, `overall: 7/10`), else one lone `N/10` or `N out of
10`, else a reply that is one number and nothing else. Text in code fences is not read as text (a judge echoing `score = 5` from the code gives
no verdict). Different values for the same label, a range (`a score of 1 to 10`), a score
outside 1..10, on another scale (`85/100`), or not a number is *missing*, never clamped,
averaged or rescaled: a judge that cannot follow the format must show up as missing in the
reports, not as a plausible number.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from iterkd.generation import Message, Prompt
from iterkd.localize import PYTHON, fence_tags, language_title, question_prompt
from iterkd.prompts import DEFAULT_PROMPTS, PromptSet
from iterkd.questions import Question
from iterkd.records import SampleRecord

TEMPLATE = "judge"
RUBRIC: tuple[str, ...] = ("correctness", "readability", "efficiency", "robustness")
SCORE_MIN, SCORE_MAX = 1.0, 10.0
_EMPHASIS = r"[*_`]{0,2}"
# a number, optionally on a scale (`7/10`, `7 out of 10`); never the start of a range (`1 to 10`)
_NUMBER = (
    _EMPHASIS + r"(-?\d+(?:\.\d+)?)(?!\.?\d)" + _EMPHASIS
    + r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)(?!\.?\d))?(?!\s*(?:-|\u2013|to)\s*\d)"
)  # fmt: skip
_SEPARATOR = rf"\s*{_EMPHASIS}\s*(?:[:=]|\bis\b|\bof\b)\s*{_EMPHASIS}\s*"
_LABELLED = tuple(  # tried in this order: the first label found decides
    re.compile(rf"\b{label}\b{_SEPARATOR}{_NUMBER}", re.IGNORECASE)
    for label in (r"overall(?:\s+score)?", r"(?:final\s+)?(?:score|rating)")
)
_ALONE = re.compile(
    r"\A[\s*_`]*(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?[\s*_`.]*\Z"
)  # a reply that is one number
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_LONE = re.compile(r"(?<![\w./])(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(10)(?!\.?\d)", re.IGNORECASE)


class JudgeScores(BaseModel):
    """Scores on the 1..10 scale; a rubric criterion the reply did not give is None."""

    model_config = ConfigDict(extra="forbid")

    correctness: float | None = None
    readability: float | None = None
    efficiency: float | None = None
    robustness: float | None = None
    overall: float


class JudgeRecord(BaseModel):
    """What the judge said about one sample: the parsed scores, or None and why."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    question_id: str
    scores: JudgeScores | None
    raw: str
    error: str | None = None
    judged: bool = True  # False: the judge was not asked (the answer holds no code)


def judge_prompt(
    question: Question,
    sample: SampleRecord,
    language: str = PYTHON,
    prompts: PromptSet = DEFAULT_PROMPTS,
) -> Prompt:
    """The rubric prompt for one sample (in the run's language, from the run's `prompts`); its
    id is the sample's."""
    content = prompts.render(
        TEMPLATE,
        prompt=question_prompt(question, language),
        code=sample.code,
        language=language_title(language),
        fence=fence_tags(language)[0],
    )
    return Prompt(
        id=sample.id,
        messages=(Message(role="user", content=content),),
        template_hash=prompts.template_hash(TEMPLATE),
    )


def overall_view(overall: float) -> float:
    """An overall score of 1..10 mapped onto the [0, 1] scale of every feedback view."""
    return (overall - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


def parse_judgement(text: str) -> tuple[JudgeScores | None, str | None]:
    """(scores, None) or (None, the reason the reply gives no valid score)."""
    found = _scored_object(text)
    if found is not None:  # an object with scores decides alone: no second guess by regex
        return _from_mapping(found)
    prose = _FENCED.sub("\n", text)  # code the judge echoes (`score = 5`) is not its verdict
    for pattern in (*_LABELLED, _LONE, _ALONE):
        matches = list(pattern.finditer(prose))
        if matches:
            return _one_score(matches)
    return None, "no score found: neither a JSON object nor a 'Score: N' / 'Overall: N' line"


def _one_score(matches: list[re.Match[str]]) -> tuple[JudgeScores | None, str | None]:
    """The score the matches agree on; different values are no score (which one would be?)."""
    given = {(m.group(1), m.group(2)) for m in matches}
    if len({(float(n), s and float(s)) for n, s in given}) > 1:
        quoted = ", ".join(repr(m.group(0).strip()) for m in matches[:4])
        return None, f"conflicting scores: {quoted}"
    match = matches[0]
    value, error = _checked(match.group(1), match.group(2), match.group(0).strip())
    return (JudgeScores(overall=value), None) if error is None else (None, error)


def judge_record(sample: SampleRecord, raw: str) -> JudgeRecord:
    scores, error = parse_judgement(raw)
    return JudgeRecord(
        sample_id=sample.id, question_id=sample.question_id, scores=scores, raw=raw, error=error
    )


def _scored_object(text: str) -> dict[str, Any] | None:
    """The first JSON object (or Python dict literal) in `text` with a rubric key, or None."""
    decoder = json.JSONDecoder()
    keys = {*RUBRIC, "overall", "score"}
    for start in (i for i, char in enumerate(text) if char == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = _dict_literal(text, start)
        if isinstance(value, dict) and keys & {str(k).lower() for k in value}:
            return {str(k).lower(): v for k, v in value.items()}
    return None


def _dict_literal(text: str, start: int) -> object:
    """The Python literal from `text[start]` (a `{`) to its matching brace (`{'overall': 7}`,
    a trailing comma), or None."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            try:
                return ast.literal_eval(text[start : end + 1])
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None  # TypeError: a set of lists (`{[1]}`) is no literal
    return None


def _from_mapping(data: dict[str, Any]) -> tuple[JudgeScores | None, str | None]:
    overall_key = "overall" if "overall" in data else "score"
    if overall_key not in data:
        return None, "the JSON object has no 'overall' score"
    scores: dict[str, float | None] = {}
    for key in (*RUBRIC, overall_key):
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{key}: not a number ({json.dumps(value)[:40]})"
        checked, error = _checked(str(value), None, key)
        if error is not None:
            return None, error
        scores["overall" if key == overall_key else key] = checked
    return JudgeScores(**scores), None  # type: ignore[arg-type]


def _checked(number: str, scale: str | None, where: str) -> tuple[float, str | None]:
    """A score as given, or an error: out of 1..10, not finite, or on a scale other than /10."""
    value = float(number)
    if scale is not None and float(scale) != SCORE_MAX:
        return value, f"{where}: on a scale of {scale}, not 1-10 (not rescaled)"
    if not math.isfinite(value) or not SCORE_MIN <= value <= SCORE_MAX:
        return value, f"{where}: {number} is outside 1-10"
    return value, None

"""The records stages hand to each other, and their JSONL files.

Records hold what a stage decided, never how long it took: timings live in `state.json` and
`events.jsonl`, so that a resumed run's files are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iterkd.atomic import atomic_write_text
from iterkd.codeblocks import ExtractionStatus

Role = Literal["teacher", "student"]
FailureKind = Literal["wrong_answer", "exception", "timeout", "resource", "invalid", "no_code"]
Bucket = Literal["easy", "medium", "hard"]

T = TypeVar("T", bound=BaseModel)


class RecordError(ValueError):
    """A record file cannot be read; the message names the file, the line and the field."""


class SampleRecord(BaseModel):
    """One model answer to one question."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description='"<question id>/<role>/<index>"')
    question_id: str
    role: Role
    index: int
    text: str = Field(description="the raw completion")
    code: str = Field(description="the program extracted from it")
    extraction: ExtractionStatus | None = Field(
        None, description="how extracting `code` went (None: written before iterkd recorded it)"
    )
    finish_reason: Literal["stop", "length", "skipped"]
    prompt_tokens: int
    completion_tokens: int
    prompt_truncated: bool = False


class VerdictRecord(BaseModel):
    """What the tests and the analyzers said about one sample."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    question_id: str
    role: Role
    index: int
    status: str = Field(description="the executor's status: passed, failed, error, timeout, ...")
    passed: bool
    failure_kind: FailureKind | None = None
    tests_passed: int
    tests_total: int
    message: str = Field("", description="first failure, shortened")
    ruff_score: float | None = None
    pylint_score: float | None = None
    lint_score: float | None = Field(None, description="another language's linter (luacheck)")
    syntax_error: bool = False
    finding_codes: list[str] = Field(default_factory=list, description="ruff and pylint codes")


class FeedbackRecord(BaseModel):
    """One question's multi-view feedback on the round's new student."""

    model_config = ConfigDict(extra="forbid")

    question_id: str
    attempts: int
    passed: int
    views: dict[str, float | None] = Field(description="each view normalised to [0, 1]")
    fused: float
    bucket: Bucket
    bucket_history: list[Bucket] = Field(description="one entry per round so far, this one last")
    failure_kinds: dict[str, int] = Field(default_factory=dict)
    disagreement: bool = Field(False, description="judge high while the tests fail, or reverse")
    judge_raw: list[str] = Field(default_factory=list, description="judge answers not parsed")


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    lines = [
        r.model_dump_json() if isinstance(r, BaseModel) else json.dumps(r, ensure_ascii=False)
        for r in records
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path, model: type[T]) -> list[T]:
    if not path.is_file():
        raise RecordError(f"{path}: missing")
    out: list[T] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "<record>"
            raise RecordError(f"{path} line {number}: {field}: {first['msg']}") from None
    return out


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except ValueError as exc:
        raise RecordError(f"{path}: not valid JSON: {exc}") from None

"""Real replies of a small chat model (SmolLM2-135M-Instruct, `tests/data/
smollm2_judge_synthesis_replies.json`, made by `benchmarks/real_model_prompts.py`) through the
judge and synthesis parsers: what such a model writes is read where it holds the field, and
missing where it does not (most of it: the model mostly echoes code or rambles)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iterkd.judge import parse_judgement
from iterkd.synthesis import parse_candidate

FIXTURE = Path(__file__).parent / "data" / "smollm2_judge_synthesis_replies.json"
REPLIES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["replies"]
SCORED = [r for r in REPLIES if r["kind"] in ("judge", "quality")]
WRITTEN = [r for r in REPLIES if r["kind"] == "synthesis"]


@pytest.mark.parametrize("row", SCORED, ids=[r["source"] for r in SCORED])
def test_a_score_is_read_only_where_the_reply_gives_one(row: dict[str, Any]) -> None:
    scores, error = parse_judgement(row["reply"])
    if row["overall"] is None:
        assert scores is None and error is not None and error.startswith(row["error"])
    else:
        assert scores is not None and scores.overall == row["overall"]
        assert f"{row['overall']:g}" in row["reply"]  # the number is in the reply


@pytest.mark.parametrize("row", WRITTEN, ids=[r["source"] for r in WRITTEN])
def test_a_question_is_read_only_where_the_reply_holds_every_field(row: dict[str, Any]) -> None:
    result = parse_candidate(row["reply"])
    assert sorted({r.split(":")[0] for r in result.reasons}) == row["reasons"]
    assert sorted({n.split(":")[0] for n in result.notes}) == row["notes"]
    assert (result.candidate is not None) == row["parsed"]
    if result.candidate is not None:  # every field is text of the reply, none made up
        candidate = result.candidate
        assert candidate.prompt.rstrip() in row["reply"]
        assert candidate.solution.rstrip() in row["reply"]
        assert candidate.asserts and all(
            a.split("(")[0] + "(" in row["reply"] for a in candidate.asserts
        )

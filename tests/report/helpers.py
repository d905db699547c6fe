"""Reading a run's files the plain way, to check the report against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def state(run: Path) -> dict[str, Any]:
    return json.loads((run / "state.json").read_text())


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(run: Path, label: str, stage: str) -> dict[str, Any]:
    return json.loads((run / "rounds" / label / stage / "summary.json").read_text())


def edit_state(run: Path, key: str, **fields: Any) -> None:
    """Set fields of one step in state.json, or drop the step with `drop=True`."""
    data = state(run)
    if fields.pop("drop", False):
        del data["steps"][key]
    else:
        data["steps"][key].update(fields)
    (run / "state.json").write_text(json.dumps(data))

"""The stages of a round. Each is one module with one entry point, `run(ctx) -> summary`, and the
same skeleton: read its inputs (earlier stages' folders, the config), compute, write its outputs
into `ctx.out`. The summary (plain JSON, no timings) becomes `summary.json`; `run_stage` then
renames the folder into place, which is what marks the stage complete."""

from __future__ import annotations

import importlib
from typing import Any

from iterkd.config import RunConfig
from iterkd.records import write_json
from iterkd.rundir import STAGES, RunDir
from iterkd.stages.common import StageContext, StageError

__all__ = ["STAGES", "StageContext", "StageError", "run_stage"]


def run_stage(run: RunDir, cfg: RunConfig, round_index: int | None, stage: str) -> dict[str, Any]:
    """Run one step from a fresh `<stage>.tmp/` and commit it; returns its summary."""
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    module = importlib.import_module(f"iterkd.stages.{stage}")
    out = run.fresh_tmp_dir(round_index, stage)
    ctx = StageContext(run=run, cfg=cfg, round=round_index, stage=stage, out=out)
    summary = module.run(ctx)
    write_json(out / "summary.json", summary)
    run.commit_stage(round_index, stage)
    return summary

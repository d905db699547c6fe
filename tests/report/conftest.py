"""One real small run for every report test: built once per session (in-process, the SMALL
overrides of tests/cycle.py), read by the tests and copied by those that break it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iterkd.config import load_config
from iterkd.controller import start_run
from tests.cycle import CONFIG, SMALL


@pytest.fixture(scope="session")
def report_run(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("report-runs")
    overrides = [*SMALL, "evaluate.greedy=true", f"runs_dir={runs}", "execution.mode=inprocess"]
    cfg = load_config(CONFIG, overrides)
    start_run(cfg)
    return runs / cfg.name


@pytest.fixture
def run_copy(report_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run, to delete, fail or interrupt (caches left out: not read;
    the reports the controller wrote left out too: the tests write their own)."""
    target = tmp_path / "run"
    ignored = shutil.ignore_patterns(
        "cache", "report.json", "report.md", "report.html", "tensorboard", "wandb"
    )
    shutil.copytree(report_run, target, ignore=ignored)
    return target

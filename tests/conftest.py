"""Shared fixtures: the tiny models are built once per machine (cached under ITERKD_CACHE_DIR or
~/.cache/iterkd) and reused by every test that needs a real model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    from iterkd.tiny_models import ensure_tiny_models

    return ensure_tiny_models()

"""The generation cache: content keys, crash-safe appends, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iterkd.generation import (
    CacheCorruptError,
    GenerationCache,
    Message,
    Prompt,
    SamplingParams,
    generate,
)
from iterkd.generation.cache import cache_key
from iterkd.generation.hf import HFBackend

PARAMS = SamplingParams(n=2, max_new_tokens=24, seed=3)


def prompts(count: int = 8) -> list[Prompt]:
    return [
        Prompt(id=f"q{i}", messages=(Message(role="user", content="def g(y):\n" * (i + 1)),))
        for i in range(count)
    ]


def test_every_part_of_the_key_matters() -> None:
    prompt = Prompt(id="a", text="x", template_hash="t1")
    base = cache_key("model@1", prompt, "x", PARAMS)
    assert cache_key("model@2", prompt, "x", PARAMS) != base
    assert (
        cache_key("model@1", prompt.model_copy(update={"template_hash": "t2"}), "x", PARAMS) != base
    )
    assert cache_key("model@1", prompt, "y", PARAMS) != base
    assert cache_key("model@1", prompt, "x", PARAMS.model_copy(update={"seed": 4})) != base
    assert cache_key("model@1", prompt, "x", PARAMS.model_copy(update={"n": 3})) != base
    assert cache_key("model@1", prompt.model_copy(update={"id": "b"}), "x", PARAMS) == base


def test_second_run_comes_from_the_cache(tiny_models: Path, tmp_path: Path) -> None:
    backend = HFBackend(tiny_models / "student", batch_size=4)
    with GenerationCache(tmp_path / "gen.jsonl") as cache:
        first, report = generate(backend, prompts(4), PARAMS, cache)
    assert report.engine_calls == 2 and report.generated == 4
    with GenerationCache(tmp_path / "gen.jsonl") as cache:
        again, report = generate(backend, prompts(4), PARAMS, cache)
    assert report.engine_calls == 0 and report.from_cache == 4
    assert again == first


def test_a_torn_last_line_is_dropped_and_a_corrupt_middle_line_refused(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    sample = {"prompt_id": "a", "index": 0, "text": "t", "finish_reason": "stop",
              "prompt_tokens": 1, "completion_tokens": 1, "seconds": 0.1}  # fmt: skip
    good = json.dumps({"key": "k1", "samples": [sample]}) + "\n"
    path.write_text(good + '{"key": "k2", "samp')
    with GenerationCache(path) as cache:
        assert set(cache.entries) == {"k1"}
    assert path.read_text() == good
    path.write_text(good + "garbage\n" + good)
    with pytest.raises(CacheCorruptError, match=r"gen\.jsonl line 2"):
        GenerationCache(path)


WORKER = """
import sys
from pathlib import Path
from iterkd.generation import GenerationCache, SamplingParams, generate
from iterkd.generation.hf import HFBackend
from tests.generation.test_cache import PARAMS, prompts
backend = HFBackend(Path(sys.argv[1]), batch_size=4)
with GenerationCache(sys.argv[2]) as cache:
    generate(backend, prompts(), PARAMS, cache)
"""


def test_killed_stage_regenerates_only_what_is_missing(tiny_models: Path, tmp_path: Path) -> None:
    cache_path = tmp_path / "gen.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tiny_models / "student"), str(cache_path)],
        cwd=Path(__file__).parents[2],
    )
    while process.poll() is None and _lines(cache_path) < 2:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = _lines(cache_path)
    assert 2 <= done < 8, "the stage must be killed part-way"
    backend = HFBackend(tiny_models / "student", batch_size=4)
    with GenerationCache(cache_path) as cache:
        resumed, report = generate(backend, prompts(), PARAMS, cache)
    assert report.from_cache == done and report.generated == 8 - done
    assert report.engine_calls == -(-2 * (8 - done) // 4)  # only the missing rows' batches
    uninterrupted, _ = generate(HFBackend(tiny_models / "student", batch_size=4), prompts(), PARAMS)
    assert {k: [s.text for s in v] for k, v in resumed.items()} == {
        k: [s.text for s in v] for k, v in uninterrupted.items()
    }


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0

"""Content-hash cache of generations, and the one function stages call to generate.

A key covers everything that decides the samples: the model identity (path + weights hash, or
endpoint + model), the prompt template's hash, the rendered prompt, the sampling params (n
included) and the seed. One JSONL line holds all n samples of a prompt, written with a single
append and fsynced, so a prompt is either fully cached or not at all. A line torn by a crash can
only be the last one; it is cut off when the cache is opened. A stage killed and restarted
regenerates only the prompts without a line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from iterkd.atomic import fsync_dir
from iterkd.generation.base import (
    Backend,
    GenerationReport,
    Job,
    Prompt,
    Sample,
    SamplingParams,
    derive_seed,
)


class CacheCorruptError(ValueError):
    """A line other than the last cannot be read: not a crash artifact, so not repaired."""


def cache_key(identity: str, prompt: Prompt, rendered: str, params: SamplingParams) -> str:
    material = json.dumps(
        [identity, prompt.template_hash, rendered, params.model_dump(mode="json")],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class GenerationCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, list[Sample]] = {}
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        offset = 0
        for number, line in enumerate(data.split(b"\n"), start=1):
            complete = offset + len(line) < len(data)  # followed by its newline
            if line and not self._read_line(line, number, complete):
                with open(self.path, "r+b") as f:  # torn by a crash mid-append: regenerated
                    f.truncate(offset)
                return
            offset += len(line) + 1

    def _read_line(self, line: bytes, number: int, complete: bool) -> bool:
        try:
            record = json.loads(line)
            samples = [Sample.model_validate(s) for s in record["samples"]]
        except (ValueError, KeyError, TypeError) as exc:
            if not complete:
                return False
            raise CacheCorruptError(f"{self.path} line {number}: {exc}") from None
        if not complete:
            return False
        self.entries[record["key"]] = samples
        return True

    def get(self, key: str) -> list[Sample] | None:
        return self.entries.get(key)

    def put(self, key: str, samples: list[Sample]) -> None:
        record = {"key": key, "samples": [s.model_dump(mode="json") for s in samples]}
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, line)  # one write with O_APPEND: the line lands whole or torn
        if written != len(line):
            raise OSError(f"short write to {self.path} ({written} of {len(line)} bytes)")
        self.entries[key] = samples

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        fsync_dir(self.path.parent)

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def generate(
    backend: Backend,
    prompts: Sequence[Prompt],
    params: SamplingParams,
    cache: GenerationCache | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[dict[str, list[Sample]], GenerationReport]:
    """Samples for every prompt (from the cache where it has them) and a report of what happened.
    `progress(k)` is called as k more prompts are done (a progress bar's `update`)."""
    started, calls_before = time.monotonic(), backend.engine_calls
    report = GenerationReport(prompts=len(prompts))
    results: dict[str, list[Sample]] = {}
    jobs: list[Job] = []
    keys: list[str] = []
    for prompt in prompts:
        rendered = backend.render(prompt)
        key = cache_key(backend.identity, prompt, rendered, params)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            results[prompt.id] = cached
            report.from_cache += 1
            if progress is not None:
                progress(1)
        else:
            # the seed follows the prompt, not the other params: with another `stop` or
            # `max_new_tokens`, a sample is the same text, cut elsewhere
            seed = derive_seed(params.seed, backend.identity, prompt.template_hash, rendered)
            jobs.append(Job(prompt=prompt, rendered=rendered, seed=seed))
            keys.append(key)
    for index, samples in backend.generate(jobs, params):
        results[jobs[index].prompt.id] = samples
        if cache is not None:
            cache.put(keys[index], samples)
        report.generated += 1
        if progress is not None:
            progress(1)
    if cache is not None:
        cache.sync()
    _count(report, [s for samples in results.values() for s in samples])
    report.engine_calls = backend.engine_calls - calls_before
    report.seconds = round(time.monotonic() - started, 3)
    return results, report


def _count(report: GenerationReport, samples: list[Sample]) -> None:
    skipped = {s.prompt_id for s in samples if s.finish_reason == "skipped"}
    report.skipped_too_long = len(skipped)
    report.truncated = len({s.prompt_id for s in samples if s.prompt_truncated})
    report.empty_completions = sum(s.text == "" and s.finish_reason != "skipped" for s in samples)
    report.hit_max_tokens = sum(s.finish_reason == "length" for s in samples)
    report.completion_tokens = sum(s.completion_tokens for s in samples)

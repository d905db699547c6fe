"""The translate stage: off by default and says so; translations are kept only when they pass
the translated tests (run for real in Lua), near-duplicates and the per-question cap are
reported, and the kept ones in the run's language become teacher answers for `train`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iterkd.config import ConfigError, load_config
from iterkd.execution import Executor, SandboxConfig
from iterkd.generation import Sample
from iterkd.localize import localize_questions, translate_text
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord, VerdictRecord, write_json, write_jsonl
from iterkd.rundir import RunDir
from iterkd.stages import run_stage
from iterkd.stages.common import StageContext
from iterkd.stages.translate import (
    _deduplicated,
    _language_records,
    _python_solutions,
    _training_rows,
)

pytestmark = pytest.mark.skipif(shutil.which("lua5.4") is None, reason="needs lua5.4")

SEED = {q.entry_point: q for q in load_bundled("seed")}
SUM_OF_EVENS = """```lua
local function sum_of_evens(nums)
  local total = 0
  for _, n in ipairs(nums) do
    if n % 2 == 0 then total = total + n end
  end
  return total
end
```"""
SUM_OF_EVENS_RENAMED = SUM_OF_EVENS.replace("total", "acc")
SUM_OF_EVENS_OTHER = """```lua
local function sum_of_evens(nums)
  local evens = {}
  for i = 1, #nums do
    if nums[i] % 2 == 0 then evens[#evens + 1] = nums[i] end
  end
  local s = 0
  for _, v in ipairs(evens) do s = s + v end
  return s
end
```"""
WRONG = "```lua\nlocal function sum_of_evens(nums) return #nums end\n```"


def sample(prompt_id: str, index: int, text: str) -> Sample:
    return Sample(
        prompt_id=prompt_id, index=index, text=text, finish_reason="stop", prompt_tokens=1,
        completion_tokens=1, seconds=0.0,
    )  # fmt: skip


def test_translations_are_kept_only_when_they_pass_and_duplicates_are_dropped() -> None:
    cfg = load_config(
        None, ["language=lua", "translate.enabled=true", "translate.max_per_question=2"]
    )
    questions, _ = localize_questions([SEED["sum_of_evens"]], "lua")
    qid = questions[0].id
    prompt = f"{qid}/translate-lua/0"
    texts = [SUM_OF_EVENS, WRONG, SUM_OF_EVENS_RENAMED, "no code at all", SUM_OF_EVENS_OTHER]
    results = {prompt: [sample(prompt, i, t) for i, t in enumerate(texts)]}
    sources = {qid: {"reference": questions[0].reference_solution}}
    with Executor(SandboxConfig(workers=2)) as executor:
        records = _language_records(executor, "lua", questions, sources, results)
    records = _deduplicated(records, cfg)
    outcomes = [r.outcome for r in records]
    assert outcomes[0] == "kept" and records[0].tests_passed == records[0].tests_total == 5
    assert outcomes[1] == "failed" and "expected 6" in records[1].message
    assert outcomes[2] == "duplicate" and records[2].duplicate_of == records[0].id
    assert records[2].similarity is not None and records[2].similarity >= 0.6
    assert outcomes[3] == "failed"  # the text itself is run: not Lua, an error
    assert outcomes[4] == "kept"  # another translation: not a near-duplicate
    samples, verdicts = _training_rows(records, "lua")
    assert [s.id for s in samples] == [records[0].id, records[4].id]
    assert all(v.passed and v.role == "teacher" for v in verdicts)
    assert _training_rows(records, "python") == ([], [])  # a Python run trains on none of them


def test_the_cap_keeps_the_first_passing_translations() -> None:
    cfg = load_config(
        None, ["language=lua", "translate.enabled=true", "translate.max_per_question=1"]
    )
    questions, _ = localize_questions([SEED["sum_of_evens"]], "lua")
    prompt = f"{questions[0].id}/translate-lua/0"
    results = {prompt: [sample(prompt, 0, SUM_OF_EVENS), sample(prompt, 1, SUM_OF_EVENS_OTHER)]}
    sources = {questions[0].id: {"reference": questions[0].reference_solution}}
    with Executor(SandboxConfig(workers=2)) as executor:
        records = _language_records(executor, "lua", questions, sources, results)
    assert [r.outcome for r in _deduplicated(records, cfg)] == ["kept", "over_cap"]


def test_the_translate_prompt_shows_the_python_and_the_lua_header() -> None:
    question = SEED["sum_of_evens"]
    text = translate_text(question, question.reference_solution, "lua")
    assert "into Lua" in text and "```python\ndef sum_of_evens" in text
    assert "local function sum_of_evens(nums)\n```" in text
    assert "== 6" not in text  # the tests are not shown: the answer must not be fitted to them


def test_translate_needs_a_language_and_sfim_needs_python() -> None:
    with pytest.raises(ConfigError, match="nothing to translate into"):
        load_config(None, ["translate.enabled=true"])
    with pytest.raises(ConfigError, match="sfim_ratio"):
        load_config(None, ["language=lua", "train.sfim_ratio=0.5"])
    cfg = load_config(None, ["translate.enabled=true", "translate.languages=[lua, lua, r]"])
    assert cfg.translate.targets("python") == ["lua", "r"]


def test_a_disabled_stage_says_so_and_writes_empty_outputs(tmp_path: Path) -> None:
    cfg = load_config(None, [])
    run = RunDir.create(tmp_path / "run", cfg)
    summary = run_stage(run, cfg, 0, "translate")
    assert summary == {"enabled": False, "note": "translate is off (translate.enabled: false)"}
    for name in ("translations.jsonl", "samples.jsonl", "verdicts.jsonl"):
        assert (run.stage_dir(0, "translate") / name).read_text() == ""


def test_a_python_run_translates_the_reference_then_the_teachers_passed_answers(
    tmp_path: Path,
) -> None:
    cfg = load_config(None, ["translate.enabled=true", "translate.languages=[lua]"])
    run = RunDir.create(tmp_path / "run", cfg)
    question = SEED["sum_of_evens"]
    codes = ["def sum_of_evens(n):\n    return 0\n", question.reference_solution, "def alt(): ..."]
    samples = [
        SampleRecord(id=f"{question.id}/teacher/{i}", question_id=question.id, role="teacher",
                     index=i, text=c, code=c, finish_reason="stop", prompt_tokens=1,
                     completion_tokens=1)
        for i, c in enumerate(codes)
    ]  # fmt: skip
    verdicts = [
        VerdictRecord(sample_id=s.id, question_id=question.id, role="teacher", index=s.index,
                      status="passed" if i else "failed", passed=bool(i), tests_passed=0,
                      tests_total=5)
        for i, s in enumerate(samples)
    ]  # fmt: skip
    for stage, name, rows in (("teacher", "samples", samples), ("verify", "verdicts", verdicts)):
        folder = run.stage_dir(0, stage)
        folder.mkdir(parents=True)
        write_jsonl(folder / f"{name}.jsonl", rows)
        write_json(folder / "summary.json", {})
    ctx = StageContext(run=run, cfg=cfg, round=0, stage="translate", out=tmp_path / "out")
    sources = _python_solutions(ctx, [question])[question.id]
    # the failed answer is not a source, the reference is not taken twice, the cap is 2
    assert sources == {"reference": question.reference_solution, samples[2].id: codes[2]}

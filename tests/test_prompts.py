"""Prompt folders: the repository's prompts/ is the package defaults, a user folder's edited
template changes the prompt and its cache key (a missing one falls back to the default), and a
bad folder is an error from validate and from the stage, naming the config key and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from iterkd.checks import validate_config
from iterkd.config import ConfigError, load_config
from iterkd.generation import Sample, SamplingParams
from iterkd.generation.cache import cache_key
from iterkd.judge import judge_prompt
from iterkd.prompts import (
    DEFAULT_PROMPTS,
    PromptFolderError,
    PromptSet,
    PromptTemplateError,
    default_names,
    default_source,
    template_hash,
)
from iterkd.questions import load_bundled
from iterkd.records import SampleRecord
from iterkd.rundir import RunDir
from iterkd.stages import feedback as feedback_stage
from iterkd.stages import synthesize as synthesize_stage
from iterkd.stages.common import StageContext, StageError, solve_prompt
from iterkd.synthesis import Request, quality_prompt, request_prompt

REPOSITORY_PROMPTS = Path(__file__).resolve().parents[1] / "prompts"
QUESTION = load_bundled("seed")[0]
SAMPLE = SampleRecord(
    id="seed/000/student/0", question_id="seed/000", role="student", index=0,
    text="def sum_of_evens(nums):\n    return 0\n", code="def sum_of_evens(nums):\n    return 0\n",
    finish_reason="stop", prompt_tokens=1, completion_tokens=1,
)  # fmt: skip
EDITED_JUDGE = "Rate this {{ language }} code for: {{ prompt }}\n{{ code }}\nScore: N\n"


def test_the_repository_prompts_folder_is_the_package_defaults() -> None:
    """The folder users copy and edit must not drift from what an installed iterkd uses."""
    files = {p.name.removesuffix(".jinja"): p for p in REPOSITORY_PROMPTS.glob("*.jinja")}
    assert sorted(files) == list(default_names())
    for name, path in files.items():
        assert path.read_text(encoding="utf-8") == default_source(name), name
    assert PromptSet(REPOSITORY_PROMPTS).problems() == []


def test_an_edited_template_changes_the_prompt_and_its_hash(tmp_path: Path) -> None:
    (tmp_path / "judge.jinja").write_text(EDITED_JUDGE)
    mine = PromptSet(tmp_path)
    edited, default = judge_prompt(QUESTION, SAMPLE, prompts=mine), judge_prompt(QUESTION, SAMPLE)
    assert edited.messages is not None and default.messages is not None
    assert edited.messages[0].content.startswith("Rate this Python code for: def sum_of_evens")
    assert edited.template_hash != default.template_hash == template_hash("judge")
    params = SamplingParams()
    rendered = [p.messages[0].content for p in (edited, default) if p.messages]
    assert cache_key("m", edited, rendered[0], params) != cache_key(
        "m", default, rendered[1], params
    )  # never a stale generation for the edited wording
    # the templates the folder lacks are the defaults, hash included
    assert mine.overridden() == ["judge"]
    assert solve_prompt(QUESTION, prompts=mine) == solve_prompt(QUESTION)
    assert mine.template_hash("synthesize_quality") == template_hash("synthesize_quality")


def test_an_unchanged_copy_hashes_like_the_default(tmp_path: Path) -> None:
    (tmp_path / "judge.jinja").write_text(default_source("judge"))
    assert PromptSet(tmp_path).template_hash("judge") == template_hash("judge")


def test_every_prompt_builder_takes_the_folder(tmp_path: Path) -> None:
    for name in ("synthesize_quality", "synthesize_variant", "synthesize_format"):
        (tmp_path / f"{name}.jinja").write_text(
            default_source(name).replace("Python student", "Python learner") + "EDITED\n"
        )
    mine = PromptSet(tmp_path)
    quality = quality_prompt("q", QUESTION.prompt, ["assert f(1) == 1"], [], "x", mine)
    request = Request(id="r000/medium/0", bucket="medium", parent=QUESTION)
    asked = request_prompt(request, 2, mine)
    assert quality.messages and "Python learner" in quality.messages[0].content
    assert asked.messages and "Python learner" in asked.messages[0].content
    assert asked.messages[0].content.count("EDITED") == 2  # the strategy and the shared format
    assert quality.template_hash == mine.template_hash("synthesize_quality")
    assert asked.template_hash != request_prompt(request, 2).template_hash


def test_a_template_is_read_once_per_prompt_set(tmp_path: Path) -> None:
    """One step renders every prompt from the same text, even if the file changes meanwhile."""
    (tmp_path / "solve.jinja").write_text("First {{ prompt }}")
    mine = PromptSet(tmp_path)
    first = mine.render("solve", prompt="x")
    (tmp_path / "solve.jinja").write_text("Second {{ prompt }}")
    assert mine.render("solve", prompt="x") == first == "First x"
    assert PromptSet(tmp_path).render("solve", prompt="x") == "Second x"


def test_unknown_names_and_undefined_variables_fail() -> None:
    with pytest.raises(PromptTemplateError, match="known: judge"):
        DEFAULT_PROMPTS.source("jduge")
    with pytest.raises(jinja2.UndefinedError) as raised:
        DEFAULT_PROMPTS.render("solve")
    assert "iterkd default solve.jinja" in "".join(raised.value.__notes__)


def test_a_missing_folder_is_an_error_naming_the_key_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-prompts"
    with pytest.raises(PromptFolderError, match=r"^prompts: prompt folder .*no-such-prompts"):
        PromptSet(missing)
    assert PromptSet.from_config(None) is DEFAULT_PROMPTS
    cfg = load_config(None, [f"prompts={missing}"])
    with pytest.raises(ConfigError, match=r"prompts: prompt folder .*no-such-prompts"):
        validate_config(cfg, "test.yaml")
    ctx = _context(tmp_path, [f"prompts={missing}"])
    with pytest.raises(StageError, match=r"000/feedback: prompts: prompt folder .*no-such"):
        _ = ctx.prompts


def test_validate_names_the_file_of_each_bad_template(tmp_path: Path) -> None:
    (tmp_path / "judge.jinja").write_text("Score {{ code }\n")
    (tmp_path / "solve.jinja").write_text("Solve {{ prompt }} in {{ langauge }}\n")
    (tmp_path / "jugde.jinja").write_text("typo in the name\n")
    (tmp_path / "translate.jinja").write_text(default_source("translate"))
    cfg = load_config(None, [f"prompts={tmp_path}"])
    with pytest.raises(ConfigError) as raised:
        validate_config(cfg, "test.yaml")
    message = str(raised.value)
    assert "3 problem(s)" in message
    assert f"prompts: {tmp_path / 'judge.jinja'}: line 1: Jinja syntax error" in message
    assert f"prompts: {tmp_path / 'solve.jinja'}: uses langauge, which iterkd" in message
    assert f"prompts: {tmp_path / 'jugde.jinja'} is not a template iterkd uses" in message


def test_validate_says_which_templates_a_good_folder_replaces(tmp_path: Path) -> None:
    (tmp_path / "judge.jinja").write_text(EDITED_JUDGE)
    (tmp_path / "solve.jinja").write_text(default_source("solve"))  # an unchanged copy
    notes = validate_config(load_config(None, [f"prompts={tmp_path}"]), "test.yaml")
    expected = f"prompts: {tmp_path}: 2 template(s) from the folder, 1 of them edited (judge); 7"
    assert any(n.startswith(expected) for n in notes), notes
    assert "prompts: iterkd's default prompts" in validate_config(load_config(None), "x")


# ------------------------------------------------------------------ the stages pass the folder
def _context(tmp_path: Path, overrides: list[str], stage: str = "feedback") -> StageContext:
    cfg = load_config(None, overrides)
    run = RunDir.create(tmp_path / "run", cfg)
    return StageContext(run=run, cfg=cfg, round=0, stage=stage, out=tmp_path / "out")


def test_the_feedback_stage_judges_with_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "judge.jinja").write_text(EDITED_JUDGE)
    asked: list[Any] = []

    def fake_generate_once(ctx, spec, role, prompts, *args, **kwargs):
        asked.extend(prompts)
        return {}, {}

    monkeypatch.setattr(feedback_stage, "generate_once", fake_generate_once)
    ctx = _context(tmp_path, [f"prompts={tmp_path}"])
    feedback_stage.judge_samples(ctx, {QUESTION.id: QUESTION}, [SAMPLE])
    assert [p.template_hash for p in asked] == [PromptSet(tmp_path).template_hash("judge")]
    assert asked[0].messages[0].content.startswith("Rate this Python code")


def test_the_synthesize_stage_asks_with_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "synthesize_format.jinja").write_text("FORMAT {{ min_tests }}\n")
    asked: list[Any] = []

    class Backend:
        def close(self) -> None: ...

    def fake_generate(backend, prompts, params, cache, progress=None):
        asked.extend(prompts)
        sample = Sample(
            prompt_id="", index=0, text="", finish_reason="stop", prompt_tokens=1,
            completion_tokens=0, seconds=0.0,
        )  # fmt: skip
        return {p.id: [sample] for p in prompts}, synthesize_stage.GenerationReport()

    monkeypatch.setattr(synthesize_stage, "open_backend", lambda spec, role: Backend())
    monkeypatch.setattr(synthesize_stage, "generate", fake_generate)
    ctx = _context(tmp_path, [f"prompts={tmp_path}"], stage="synthesize")
    ctx.out.mkdir()
    synthesize_stage.generate_texts(
        ctx, [Request(id="r000/hard/0", bucket="hard", parent=QUESTION)]
    )
    assert asked and asked[0].messages[0].content.rstrip().endswith("FORMAT 2")

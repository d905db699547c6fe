"""Promotion of a round's student: the exported model (transformers, vLLM), the gate, lineage,
the run lock, the target's atomic replacement, and the controller's `auto_promote`.

One small run is built per module (in-process); each test works on a copy of it whose evaluation
numbers are crafted, since the tiny student's own pass@1 is usually 0 everywhere."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from iterkd.config import load_config
from iterkd.controller import start_run
from iterkd.promote import (
    GateError,
    PromoteError,
    add_promote_parser,
    auto_promote,
    promote,
)
from iterkd.rundir import RunDir
from tests.cycle import CONFIG, SMALL
from tests.test_rundir import _hold_lock


@pytest.fixture(scope="module")
def built_run(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    # LoRA, though the tiny default fine-tunes the whole student: merging an adapter into its
    # base is the export with the most to get wrong; a full checkpoint is exported as it is
    # (test_a_full_checkpoint_is_exported_as_it_is)
    overrides = [*SMALL, "train.method=lora", f"runs_dir={runs}", "execution.mode=inprocess"]
    cfg = load_config(CONFIG, overrides)
    start_run(cfg)
    return runs / cfg.name


@pytest.fixture
def run(built_run: Path, tmp_path: Path) -> Path:
    """A copy of the built run, with pass@1 0.25 for the baseline and 0.5 for both rounds."""
    copy = tmp_path / "run"
    shutil.copytree(built_run, copy)
    set_metric(copy, "baseline", 0.25)
    set_metric(copy, "000", 0.5)
    set_metric(copy, "001", 0.5)
    return copy


def set_metric(run: Path, label: str, value: float, key: str = "pass@1") -> None:
    path = run / "rounds" / label / "evaluate" / "summary.json"
    summary = json.loads(path.read_text())
    summary[key] = value
    path.write_text(json.dumps(summary))


def set_trained_nothing(run: Path, label: str) -> None:
    path = run / "rounds" / label / "train" / "summary.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"checkpoint": "none"}))
    shutil.rmtree(path.parent / "checkpoint")


def set_config(run: Path, **promote_keys: object) -> None:
    path = run / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["promote"] = data.get("promote", {}) | promote_keys
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir() if p.name != directory.name)


def token_ids() -> list[int]:
    return [1, 17, 250, 33, 901, 5, 64, 128, 7]


# ------------------------------------------------------------------ the exported model
def test_the_export_equals_base_plus_adapter(run: Path, tiny_models: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iterkd.modeling import load_model

    result = promote(run)
    assert result.round == 1 and result.target == run / "promoted"  # the latest evaluated round
    files = {p.name for p in result.target.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "MODEL_CARD.md"} <= files
    assert "lineage.json" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert not any(result.target.glob("adapter_*"))
    exported = AutoModelForCausalLM.from_pretrained(result.target, local_files_only=True)
    adapter = run / "rounds" / "001" / "train" / "checkpoint"
    reference = load_model(tiny_models / "student", adapter=adapter, device="cpu")
    ids = torch.tensor([token_ids()])
    with torch.no_grad():
        difference = (exported(ids).logits - reference(ids).logits).abs().max().item()
    assert difference < 1e-5
    tokenizer = AutoTokenizer.from_pretrained(result.target, local_files_only=True)
    chat = [{"role": "user", "content": "def f(x):"}]
    assert tokenizer.chat_template and tokenizer.apply_chat_template(chat, tokenize=False)


def test_the_export_runs_on_vllm_like_transformers(run: Path) -> None:
    pytest.importorskip("vllm")
    import torch
    from transformers import AutoModelForCausalLM
    from vllm import SamplingParams

    from iterkd.generation.vllm_engine import VLLMBackend

    target = promote(run).target
    engine = VLLMBackend(target, max_model_len=256)
    greedy = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    try:
        output = engine.llm.generate([{"prompt_token_ids": token_ids()}], greedy, use_tqdm=False)
    finally:
        engine.close()
    vllm_tokens = list(output[0].outputs[0].token_ids)
    model = AutoModelForCausalLM.from_pretrained(target, local_files_only=True)
    with torch.no_grad():
        hf = model.generate(
            torch.tensor([token_ids()]), max_new_tokens=8, min_new_tokens=8, do_sample=False
        )
    assert vllm_tokens == hf[0, len(token_ids()) :].tolist()


def test_a_full_checkpoint_is_exported_as_it_is(run: Path, tiny_models: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    checkpoint = run / "rounds" / "001" / "train" / "checkpoint"
    shutil.rmtree(checkpoint)
    shutil.copytree(tiny_models / "teacher", checkpoint)  # stands in for `method: full` weights
    summary = checkpoint.parent / "summary.json"
    summary.write_text(json.dumps(json.loads(summary.read_text()) | {"checkpoint": "full"}))
    result = promote(run)
    assert result.lineage["checkpoint"]["kind"] == "full"
    ids = torch.tensor([token_ids()])
    logits = [
        AutoModelForCausalLM.from_pretrained(path, local_files_only=True)(ids).logits
        for path in (result.target, checkpoint)
    ]
    assert torch.equal(logits[0], logits[1])


# ------------------------------------------------------------------ the gate
def test_the_gate_refuses_an_equal_score_and_force_overrides_it(run: Path) -> None:
    set_metric(run, "001", 0.25)
    with pytest.raises(GateError, match=r"pass@1 0\.25 is not above 0\.25 \(the initial student\)"):
        promote(run)
    assert not (run / "promoted").exists() and not any(run.glob("promoted*"))
    result = promote(run, force=True)
    gate = result.lineage["gate"]
    assert gate["passed"] is False and gate["forced"] is True and gate["reference"] == 0.25
    assert result.outcome.endswith("; forced")


def test_the_margin_is_respected(run: Path) -> None:
    with pytest.raises(GateError, match=r"0\.5 is not above 0\.25 .* \+ margin 0\.25"):
        promote(run, margin=0.25)
    assert promote(run, margin=0.2).gate.beats
    set_config(run, margin=0.3)  # the run's config decides when no margin is given
    with pytest.raises(GateError, match=r"margin 0\.3"):
        promote(run, round=0)


def test_another_metric_is_compared_and_a_missing_one_named(run: Path) -> None:
    set_metric(run, "001", 0.0, key="pass@2")
    with pytest.raises(GateError, match=r"pass@2 0\.0 is not above"):
        promote(run, metric="pass@2")
    with pytest.raises(PromoteError, match=r"no pass@4 \(it has pass@1, pass@2"):
        promote(run, metric="pass@4")
    with pytest.raises(PromoteError, match=r"promote\.metric"):
        promote(run, metric="accuracy")


def test_scores_from_another_eval_set_are_not_compared(run: Path) -> None:
    questions = run / "rounds" / "001" / "evaluate" / "questions.jsonl"
    questions.write_text("".join(questions.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(PromoteError, match="evaluated on another question set") as refused:
        promote(run)
    assert not isinstance(refused.value, GateError)
    assert promote(run, force=True).lineage["gate"]["same_eval_set"] is False


# ------------------------------------------------------------------ lineage
def test_lineage_records_the_round_and_chains_to_the_previous_promotion(run: Path) -> None:
    first = promote(run, round=0).lineage
    assert first["parent"] is None and first["round"] == 0
    assert first["metrics"]["pass@1"] == 0.5 and first["baseline_metrics"]["pass@1"] == 0.25
    assert first["run_dir"] == str(run.resolve()) and first["run_name"] == "tiny-cpu"
    state = json.loads((run / "state.json").read_text())
    assert first["config_hash"] == state["config_hash"] and first["checkpoint"]["kind"] == "adapter"
    assert set(first["data"]["round_pools"]) == {"000"} and first["data"]["eval_questions"]
    assert first["iterkd_version"] and first["promoted_at"] and len(first["weights_sha256"]) == 64
    with pytest.raises(GateError, match=r"0\.5 is not above 0\.5 \(promoted round 000"):
        promote(run, round=1)  # the reference is now the promoted model, not the baseline
    set_metric(run, "001", 0.75)
    second = promote(run).lineage
    assert second["parent"] == first and second["gate"]["reference"] == 0.5
    on_disk = json.loads((run / "promoted" / "lineage.json").read_text())
    assert on_disk == second and on_disk["parent"]["round"] == 0
    card = (run / "promoted" / "MODEL_CARD.md").read_text()
    assert "round 001" in card and "| pass@1 | 0.25 | 0.75 |" in card and "round 000 of run" in card


def test_cli_parser_and_handler(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    add_promote_parser(parser.add_subparsers())
    target = tmp_path / "elsewhere" / "model"
    args = parser.parse_args(["promote", str(run), "--round", "0", "--to", str(target)])
    assert args.handler(args) == 0
    assert capsys.readouterr().out.startswith(f"promoted round 000 of run tiny-cpu to {target}:")
    assert json.loads((target / "lineage.json").read_text())["round"] == 0
    assert siblings(target) == []


# ------------------------------------------------------------------ lock and target
def test_refused_while_a_controller_holds_the_run(run: Path) -> None:
    holder = _hold_lock(run)
    try:
        with pytest.raises(PromoteError, match=f"in use by a controller \\(pid {holder.pid}\\)"):
            promote(run, force=True)
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "promoted").exists()
    promote(run)  # the lock is free again


def test_a_target_that_is_not_a_promotion_is_left_alone(run: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(PromoteError, match=r"is not a promotion \(no lineage\.json\)"):
        promote(run, to=target, force=True)
    assert snapshot(target) == {"notes.txt": b"keep me"} and siblings(target) == ["run"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PromoteError, match="not a directory"):
        promote(run, to=tmp_path / "afile", force=True)


def break_card(monkeypatch: pytest.MonkeyPatch) -> None:
    import iterkd.promote

    def broken(*args: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(iterkd.promote, "model_card", broken)


def break_save(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import PreTrainedModel

    def broken(self: object, directory: Path, **kwargs: object) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"half written")
        raise OSError("disk full")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", broken)


@pytest.mark.parametrize("breaker", [break_save, break_card], ids=["save", "card"])
def test_a_failed_export_leaves_the_previous_promotion_intact(
    run: Path, monkeypatch: pytest.MonkeyPatch, breaker: Callable[[pytest.MonkeyPatch], None]
) -> None:
    target = promote(run, round=0).target
    before = snapshot(target)
    set_metric(run, "001", 0.75)
    breaker(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        promote(run, round=1)
    assert snapshot(target) == before and not list(run.glob("promoted.*"))
    monkeypatch.undo()
    assert promote(run, round=1).lineage["parent"]["round"] == 0


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_swap_killed_midway_is_repaired_on_the_next_start(run: Path) -> None:
    target = promote(run, round=0).target
    before = snapshot(target)
    # killed after the old promotion was moved aside, before the new one was moved in
    target.rename(run / "promoted.old")
    leftover = run / f"promoted.tmp-{dead_pid()}"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    with pytest.raises(GateError):  # refused, but only after the repair
        promote(run, round=0)
    assert snapshot(target) == before and not list(run.glob("promoted.*"))
    # killed after the new one was moved in, while the old one was being removed
    shutil.copytree(target, run / "promoted.old")
    set_metric(run, "001", 0.75)
    promote(run, round=1)
    assert not list(run.glob("promoted.*"))


def test_a_round_that_trained_nothing_is_refused_naming_the_carried_checkpoint(
    run: Path,
) -> None:
    set_trained_nothing(run, "001")
    with pytest.raises(
        PromoteError, match=r"round 001 trained nothing.*round 000's checkpoint.*--round 0"
    ):
        promote(run, force=True)  # the default round is the latest evaluated one: 001
    set_trained_nothing(run, "000")
    with pytest.raises(PromoteError, match=r"round 000 trained nothing.*initial student"):
        promote(run, round=0, force=True)
    with pytest.raises(PromoteError, match=r"round 002 has no complete evaluate step"):
        promote(run, round=2)


# ------------------------------------------------------------------ auto_promote
def test_auto_promote_outcomes_while_the_controller_holds_the_lock(run: Path) -> None:
    rundir = RunDir(run)
    with rundir.lock():  # as the controller calls it: the lock is already held
        assert auto_promote(rundir, 0) == "skipped: promote.auto is off"
        set_config(run, auto=True)
        set_metric(run, "000", 0.25)
        assert auto_promote(rundir, 0) == (
            "gate not passed: round 000: pass@1 0.25 is not above 0.25 (the initial student) "
            "+ margin 0.0"
        )
        assert auto_promote(rundir, 1).startswith("promoted round 001 of run tiny-cpu to ")
        assert auto_promote(rundir, 1).startswith("skipped: round 001 is already promoted")
        set_trained_nothing(run, "000")
        assert auto_promote(rundir, 0).startswith("skipped: round 000 trained nothing")
    outcomes = [e["outcome"] for e in rundir.events() if e["event"] == "auto_promote"]
    assert len(outcomes) == 5 and outcomes[2].startswith("promoted")
    assert [e["round"] for e in rundir.events() if e["event"] == "promoted"] == ["001"]

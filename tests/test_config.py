"""Config: strict keys and types, overrides, error messages naming key path and file, the diff
used to refuse resuming with a changed config."""

from __future__ import annotations

from pathlib import Path

import pytest

from iterkd.config import (
    ConfigError,
    config_diff,
    config_hash,
    config_to_dict,
    load_config,
    unsafe_changes,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    "name",
    [
        "tiny-cpu.yaml",
        "tiny-cpu-vllm.yaml",
        "example-7b-vllm-serve.yaml",
        "smollm2-pruned-gpu.yaml",
        "tiny-pruned-cpu.yaml",
    ],
)
def test_shipped_configs_parse(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.rounds >= 1
    assert cfg.models.teacher.backend in ("hf", "vllm", "openai")


def test_overrides_land_on_nested_defaults() -> None:
    cfg = load_config(CONFIGS / "tiny-cpu.yaml", ["rounds=3", "models.teacher.batch_size=8"])
    assert cfg.rounds == 3
    assert cfg.models.teacher.batch_size == 8
    assert cfg.models.teacher.path == "tiny:teacher"  # the rest of the section is kept
    assert load_config(None, ["train.learning_rate=2e-5"]).train.learning_rate == 2e-5


def test_unknown_key_is_named_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rounds: 2\ntrain:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "train.learnin_rate: unknown key" in str(info.value)


def test_wrong_type_is_named_with_its_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rounds: two\n")
    with pytest.raises(ConfigError, match=r"rounds: .*integer.*'two'") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "top level must be a mapping"), ("a: [\n", "not valid YAML")],
)
def test_bad_yaml(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("override", ["rounds", "=3", "a..b=1", "rounds.x=1"])
def test_malformed_override(override: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [override])


def test_model_needs_a_location() -> None:
    with pytest.raises(ConfigError, match=r"models.teacher: .*needs `endpoints`"):
        load_config(None, ["models.teacher.backend=openai"])


def test_a_source_given_in_a_file_replaces_the_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: {path: q.jsonl, format: humaneval}\n")
    cfg = load_config(path)
    assert cfg.data.train.bundled is None and cfg.data.train.path == "q.jsonl"


def test_diff_and_safe_keys() -> None:
    old = config_to_dict(load_config(None))
    new = config_to_dict(load_config(None, ["rounds=5", "train.learning_rate=0.5"]))
    diff = config_diff(old, new)
    assert "rounds: 2 -> 5" in diff
    assert any(line.startswith("train.learning_rate:") for line in diff)
    assert unsafe_changes(old, new) == [d for d in diff if d.startswith("train.")]
    same_steps = load_config(None, ["rounds=5", "execution.mode=inprocess"])
    assert config_hash(same_steps) == config_hash(load_config(None))
    assert config_hash(load_config(None, ["seed=1"])) != config_hash(load_config(None))

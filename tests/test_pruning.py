"""`iterkd models prune` on the tiny teacher: block influence finds a layer that does nothing,
the pruned folder is a working checkpoint (KV cache slots renumbered), and bad input fails with
one clear error and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iterkd.cli import main
from iterkd.modeling import load_model
from iterkd.pruning import MANIFEST, block_influence, layers_to_drop


@pytest.fixture()
def teacher_with_idle_layer(tiny_models: Path, tmp_path: Path) -> Path:
    """The tiny teacher (3 layers) with layer 1's residual writes zeroed: its output equals
    its input, so its block influence is exactly 0."""
    path = tmp_path / "teacher"
    shutil.copytree(tiny_models / "teacher", path)
    model = load_model(path, device="cpu", dtype="float32")
    layer = model.model.layers[1]
    with torch.no_grad():
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    model.save_pretrained(path)
    return path


def test_block_influence_drops_the_layer_that_does_nothing(
    teacher_with_idle_layer: Path, tmp_path: Path, capsys
) -> None:
    to = tmp_path / "student"
    assert main(["models", "prune", "--from", str(teacher_with_idle_layer), "--drop", "1",
                 "--to", str(to)]) == 0  # fmt: skip
    manifest = json.loads((to / MANIFEST).read_text())
    assert manifest["dropped"] == [1] and manifest["scores"][1] == pytest.approx(0.0, abs=1e-6)
    assert min(manifest["scores"][0], manifest["scores"][2]) > 0.001
    assert manifest["calibration"] == "seed" and manifest["calibration_rows"] == 40
    assert json.loads((to / "config.json").read_text())["num_hidden_layers"] == 2
    # the dropped layer changed nothing: the pruned model's logits are the original's
    original = load_model(teacher_with_idle_layer, device="cpu", dtype="float32")
    pruned = load_model(to, device="cpu", dtype="float32")
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        assert torch.allclose(original(ids).logits, pruned(ids).logits, atol=1e-5)
    assert json.loads(capsys.readouterr().out)["layers_after"] == 2


def test_pruned_checkpoint_decodes_with_its_kv_cache(tiny_models: Path, tmp_path: Path) -> None:
    """Dropping layer 1 moves layer 2 to slot 1: cached decoding must equal full recomputation."""
    to = tmp_path / "student"
    assert main(["models", "prune", "--from", str(tiny_models / "teacher"), "--drop", "1",
                 "--method", "last", "--to", str(to)]) == 0  # fmt: skip
    assert json.loads((to / MANIFEST).read_text())["dropped"] == [1]
    model = load_model(to, device="cpu", dtype="float32")
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    ids = torch.tensor([[1, 40, 41, 42]])
    cached = model.generate(ids, max_new_tokens=8, do_sample=False)
    full = ids
    with torch.no_grad():
        for _ in range(8):
            full = torch.cat([full, model(full).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(cached, full)


def test_which_layers_each_method_drops() -> None:
    scores = [0.9, 0.05, 0.01, 0.3, 0.02, 0.8]
    assert layers_to_drop("block-influence", 2, scores, 6) == [2, 4]
    assert layers_to_drop("block-influence", 4, scores, 6) == [1, 2, 3, 4]  # never 0 or 5
    assert layers_to_drop("last", 2, None, 6) == [3, 4]


def test_block_influence_of_an_identity_layer_is_zero(teacher_with_idle_layer: Path) -> None:
    model = load_model(teacher_with_idle_layer, device="cpu", dtype="float32")
    scores = block_influence(model, [[1, 5, 6, 7], [1, 8]])
    assert len(scores) == 3 and scores[1] == pytest.approx(0.0, abs=1e-6) and scores[0] > 0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("drop", ["0", "2", "-1"])
def test_drop_out_of_range(tiny_models: Path, tmp_path: Path, capsys, drop: str) -> None:
    to = tmp_path / "student"
    assert main(["models", "prune", "--from", str(tiny_models / "teacher"), "--drop", drop,
                 "--to", str(to)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"--drop {drop} is out of range: this model has 3 layers, so 1 to 1 can be" in err
    assert not to.exists() and list(tmp_path.iterdir()) == []


def test_an_architecture_it_cannot_prune(tmp_path: Path, capsys) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from iterkd.tiny_models import build_tokenizer

    source = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=2000)).save_pretrained(
        source
    )
    build_tokenizer().save_pretrained(source)
    to = tmp_path / "student"
    assert main(["models", "prune", "--from", str(source), "--drop", "1", "--to", str(to)]) == 2
    assert (
        f"{source}: cannot prune GPT2LMHeadModel: no decoder layer list" in capsys.readouterr().err
    )
    assert not to.exists()


def test_a_non_empty_target_is_refused(tiny_models: Path, tmp_path: Path, capsys) -> None:
    to = tmp_path / "student"
    to.mkdir()
    (to / "keep.txt").write_text("mine")
    assert main(["models", "prune", "--from", str(tiny_models / "teacher"), "--drop", "1",
                 "--to", str(to)]) == 2  # fmt: skip
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in to.iterdir()] == ["keep.txt"]

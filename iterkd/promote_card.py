"""MODEL_CARD.md of a promoted model, written from its lineage (so the two never disagree)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAIN_COLUMNS = ("checkpoint", "sft_rows", "pairs", "steps", "loss_first", "loss_last")


def model_card(lineage: dict[str, Any], target: Path) -> str:
    sections = [
        _header(lineage, target),
        _evaluation(lineage),
        _gate(lineage),
        _training(lineage),
        _usage(target),
        _lineage(lineage),
    ]
    return "\n\n".join(sections) + "\n"


def _header(lineage: dict[str, Any], target: Path) -> str:
    ckpt = lineage["checkpoint"]
    how = "LoRA adapter merged into its base" if ckpt["kind"] == "adapter" else "full weights"
    rows = [
        ("run", f"`{lineage['run_name']}` ({lineage['run_dir']})"),
        ("round", lineage["round_label"]),
        ("base model", f"`{ckpt['base']}` ({ckpt['base_path']})"),
        ("checkpoint", f"{how}: {ckpt['path']}"),
        ("weights sha256", f"`{lineage['weights_sha256']}`"),
        ("config hash", f"`{lineage['config_hash']}`"),
        ("promoted", f"{lineage['promoted_at']} by iterkd {lineage['iterkd_version']}"),
    ]
    return "\n".join(
        [
            f"# {lineage['run_name']}, round {lineage['round_label']}: distilled code student",
            "",
            "A standalone causal language model exported by `iterkd promote` from an iterative "
            "knowledge-distillation run: the student after the round below. It loads with "
            f"transformers or vLLM from `{target}`, without iterkd or peft.",
            "",
            _table(("item", "value"), rows),
        ]
    )


def _evaluation(lineage: dict[str, Any]) -> str:
    metrics, baseline = lineage["metrics"], lineage.get("baseline_metrics") or {}
    rows = [(k, _num(baseline.get(k)), _num(v)) for k, v in metrics.items()]
    ev, data = lineage["evaluation"], lineage["data"]
    source = data["eval_source"]
    where = source.get("bundled") or source.get("path")
    return "\n".join(
        [
            "## Held-out evaluation",
            "",
            _table(("metric", "initial student", "this model"), rows),
            "",
            f"{ev['questions']} questions of `{where}` (hash `{data['eval_questions']}`), "
            f"{ev['n']} samples each at temperature {ev['temperature']}, at most "
            f"{ev['max_new_tokens']} new tokens; pass@k is the unbiased estimator over the "
            "samples, an answer passes when its code passes the question's tests in the sandbox.",
        ]
    )


def _gate(lineage: dict[str, Any]) -> str:
    gate = lineage["gate"]
    verdict = "passed" if gate["passed"] else "not passed: promoted with --force"
    return "\n".join(
        [
            "## Promotion gate",
            "",
            f"{gate['metric']} {gate['candidate']} against {_num(gate['reference'])} "
            f"({gate['reference_source']}), margin {gate['margin']}: {verdict}.",
        ]
    )


def _training(lineage: dict[str, Any]) -> str:
    rows = [
        (label, *(_num(summary.get(c)) for c in TRAIN_COLUMNS))
        for label, summary in lineage["training"].items()
    ]
    return "\n".join(
        [
            "## Training",
            "",
            "Each round fine-tunes the student on the teacher's answers that passed their tests "
            "(SFT) with a contrastive term against the student's own failed answers; rounds "
            "after the first continue the same adapter.",
            "",
            _table(("round", *TRAIN_COLUMNS), rows),
        ]
    )


def _usage(target: Path) -> str:
    return "\n".join(
        [
            "## Use",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'tokenizer = AutoTokenizer.from_pretrained("{target}")',
            f'model = AutoModelForCausalLM.from_pretrained("{target}")',
            "```",
            "",
            f"or `vllm serve {target}`. The tokenizer carries the chat template the student was "
            "trained and evaluated with.",
        ]
    )


def _lineage(lineage: dict[str, Any]) -> str:
    parent = lineage.get("parent")
    before = (
        f"round {parent['round_label']} of run `{parent['run_name']}` ({parent['run_dir']})"
        if parent
        else "none: this is the first promotion into this directory"
    )
    return "\n".join(
        [
            "## Lineage",
            "",
            "`lineage.json` holds the full record: run, round, metrics, config hash, the hashes "
            "of the eval questions and of each round's training pool, and the lineage of the "
            "model promoted here before.",
            "",
            f"Previously promoted here: {before}.",
        ]
    )


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "-" if value is None else str(value)

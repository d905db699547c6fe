"""Promotion: export a round's student as a standalone model directory, when it beats the model
promoted before (or the initial student) on the held-out evaluation.

    iterkd promote runs/tiny-cpu [--round N] [--to DIR] [--force]

The export is a plain Hugging Face checkpoint (LoRA merged into its base, safetensors, tokenizer
with its chat template, generation config) that transformers and vLLM load without iterkd or
peft, plus `MODEL_CARD.md` and `lineage.json` (where it came from, its numbers, its parent).
It is written into a sibling temporary folder and swapped in with renames, so a failed or killed
promotion leaves the previous one in place. See docs/promotion.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from iterkd import __version__
from iterkd.atomic import atomic_write_text, fsync_dir
from iterkd.config import PromoteConfig, RunConfig
from iterkd.modeling import weights_hash
from iterkd.promote_card import model_card
from iterkd.records import read_json
from iterkd.rundir import RunDir, RunState, round_label

LINEAGE = "lineage.json"
CARD = "MODEL_CARD.md"
LINEAGE_FORMAT = 1
DEFAULT_TARGET = "promoted"  # under the run directory


class PromoteError(ValueError):
    """A promotion cannot be done as asked; the message says why and what to do."""


class GateError(PromoteError):
    """The candidate does not beat the reference by the margin; `gate` holds both numbers."""

    def __init__(self, message: str, gate: Gate) -> None:
        super().__init__(message)
        self.gate = gate


@dataclass(frozen=True)
class Candidate:
    """The student after one round (resolved as `stages.common.student_spec` does) and the
    numbers of that round's held-out evaluation."""

    round: int
    kind: str  # "adapter" (on `base`) or "full" (then `base` is the checkpoint itself)
    checkpoint: Path
    base: Path
    base_name: str  # the config's name for the base model, e.g. tiny:student
    metrics: dict[str, float]
    eval_hash: str

    @property
    def label(self) -> str:
        return round_label(self.round)


@dataclass(frozen=True)
class Reference:
    """What the candidate must beat: the promoted model's numbers, else the initial student's."""

    value: float | None  # None: the promoted model's lineage lacks the metric
    eval_hash: str | None
    source: str


@dataclass(frozen=True)
class Gate:
    metric: str
    margin: float
    candidate: float
    reference: float | None
    reference_source: str
    same_eval_set: bool
    forced: bool

    @property
    def beats(self) -> bool:
        # metrics carry 6 decimals: rounding the difference keeps 0.3 - 0.1 - 0.2 from deciding
        if self.reference is None or not self.same_eval_set:
            return False
        return round(self.candidate - self.reference - self.margin, 9) > 0

    def comparison(self) -> str:
        sign = ">" if self.beats else "is not above"
        where = "" if self.same_eval_set else ", on another eval set"
        return (
            f"{self.metric} {self.candidate} {sign} {self.reference} "
            f"({self.reference_source}{where}) + margin {self.margin}"
        )


@dataclass(frozen=True)
class PromotionResult:
    target: Path
    round: int
    gate: Gate
    lineage: dict[str, Any]

    @property
    def outcome(self) -> str:
        """One line: what was promoted where, and why it was allowed."""
        forced = "; forced" if self.gate.forced and not self.gate.beats else ""
        return (
            f"promoted round {round_label(self.round)} of run {self.lineage['run_name']} to "
            f"{self.target}: {self.gate.comparison()}{forced}"
        )


# ------------------------------------------------------------------ entry points
def promote(
    run_dir: str | Path,
    round: int | None = None,  # shadows the builtin: the name the CLI and the docs use
    to: str | Path | None = None,
    force: bool = False,
    *,
    metric: str | None = None,
    margin: float | None = None,
) -> PromotionResult:
    """Promote the student after `round` (default: the latest evaluated round) into `to`
    (default: `promote.to` of the run's config, else `<run>/promoted`). Refused while a
    controller holds the run; holds the run's lock itself so none starts meanwhile."""
    run = RunDir(run_dir)
    run.load_state()  # refuses a path that is not a run before anything is touched
    holder = run.locked_by()
    if holder is not None:
        raise PromoteError(
            f"{run.path} is in use by a controller (pid {holder}): promote when it has finished"
        )
    with run.lock():  # a controller starting in between is refused by the lock itself
        return _promote_locked(run, round, to, force, metric, margin)


def auto_promote(run: RunDir, round_index: int) -> str:
    """For the controller after a round's evaluate step, while it holds the run's lock (this
    does not take it). Never raises: returns one line starting with `promoted`, `gate not
    passed`, `skipped` (not asked, nothing to promote, a refusal) or `failed` (the export broke;
    the previous promotion is intact). The line is also recorded as an `auto_promote` event."""
    outcome = _auto_outcome(run, round_index)
    run.event("auto_promote", round=round_label(round_index), outcome=outcome)
    return outcome


def _auto_outcome(run: RunDir, round_index: int) -> str:
    try:
        cfg = run.load_config()
        if not cfg.promote.auto:
            return "skipped: promote.auto is off"
        target = target_dir(run, cfg, None)
        recover_target(target)
        if _is_current(read_lineage(target), run, round_index):
            return f"skipped: round {round_label(round_index)} is already promoted in {target}"
        return _promote_locked(run, round_index, None, False, None, None).outcome
    except GateError as exc:
        return f"gate not passed: round {round_label(round_index)}: {exc.gate.comparison()}"
    except PromoteError as exc:
        return "skipped: " + _one_line(str(exc))
    except Exception as exc:  # the run's own steps are done: a broken export must not end it
        return f"failed: {type(exc).__name__}: {_one_line(str(exc))}"


def _promote_locked(
    run: RunDir,
    requested: int | None,
    to: str | Path | None,
    force: bool,
    metric: str | None,
    margin: float | None,
) -> PromotionResult:
    """The promotion itself; the caller holds the run's lock."""
    cfg, state = run.load_config(), run.load_state()
    settings = _settings(cfg, metric, margin)
    target = target_dir(run, cfg, to)
    recover_target(target)
    parent = read_lineage(target)  # refuses a target that is not a promotion
    candidate = find_candidate(run, cfg, _pick_round(run, requested), settings.metric)
    gate = _judge(candidate, _reference(run, parent, settings.metric), settings, force)
    lineage = _install(run, cfg, state, candidate, gate, parent, target)
    run.event(
        "promoted",
        round=candidate.label,
        target=str(target),
        metric=gate.metric,
        value=gate.candidate,
        reference=gate.reference,
        forced=gate.forced and not gate.beats,
    )
    return PromotionResult(target=target, round=candidate.round, gate=gate, lineage=lineage)


def target_dir(run: RunDir, cfg: RunConfig, to: str | Path | None) -> Path:
    """`to`, else the config's `promote.to` (relative to the working directory), else
    `<run>/promoted`."""
    chosen = to if to is not None else cfg.promote.to
    path = Path(chosen).expanduser() if chosen is not None else run.path / DEFAULT_TARGET
    return path.absolute()


def _settings(cfg: RunConfig, metric: str | None, margin: float | None) -> PromoteConfig:
    given = {k: v for k, v in {"metric": metric, "margin": margin}.items() if v is not None}
    try:
        return PromoteConfig.model_validate({**cfg.promote.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PromoteError(f"promote.{first['loc'][0]}: {first['msg']}") from None


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


# ------------------------------------------------------------------ the candidate
def _evaluated_rounds(run: RunDir) -> list[int]:
    if not run.rounds_dir.is_dir():
        return []
    rounds = (int(p.name) for p in run.rounds_dir.iterdir() if p.name.isdigit())
    return sorted(r for r in rounds if run.is_complete(r, "evaluate"))


def _pick_round(run: RunDir, requested: int | None) -> int:
    done = _evaluated_rounds(run)
    if requested is None:
        if not done:
            raise PromoteError(
                f"{run.path}: no round has a complete evaluate step: nothing to promote"
            )
        return done[-1]
    if requested not in done:
        have = ", ".join(map(round_label, done)) or "none"
        raise PromoteError(
            f"{run.path}: round {round_label(requested)} has no complete evaluate step "
            f"(evaluated rounds: {have})"
        )
    return requested


def find_candidate(run: RunDir, cfg: RunConfig, round_index: int, metric: str) -> Candidate:
    """The checkpoint the round's train step wrote and the round's evaluation. A round that
    trained nothing has no checkpoint of its own: it is refused, naming the round whose
    checkpoint it carries (promoting it would credit that checkpoint with a second draw of
    the same evaluation)."""
    kind = _train_summary(run, round_index).get("checkpoint")
    if kind == "none":
        raise PromoteError(_carried_message(run, round_index))
    if kind not in ("adapter", "full"):
        raise PromoteError(f"round {round_label(round_index)}/train: unknown checkpoint {kind!r}")
    checkpoint = run.stage_dir(round_index, "train") / "checkpoint"
    if not checkpoint.is_dir():
        raise PromoteError(f"{checkpoint} is missing (round {round_label(round_index)} trained)")
    base_name, base = _student_base(cfg) if kind == "adapter" else (str(checkpoint), checkpoint)
    metrics = _eval_metrics(run, round_index)
    if metric not in metrics:
        raise PromoteError(
            f"round {round_label(round_index)}'s evaluation has no {metric} (it has "
            f"{', '.join(metrics) or 'no pass@k'}; evaluate.ks decides which k are measured)"
        )
    eval_hash = questions_hash(run.stage_dir(round_index, "evaluate") / "questions.jsonl")
    return Candidate(round_index, kind, checkpoint, base, base_name, metrics, eval_hash)


def _train_summary(run: RunDir, round_index: int) -> dict[str, Any]:
    if not run.is_complete(round_index, "train"):
        raise PromoteError(f"round {round_label(round_index)} has no complete train step")
    return read_json(run.stage_dir(round_index, "train") / "summary.json")


def _carried_message(run: RunDir, round_index: int) -> str:
    label = round_label(round_index)
    head = (
        f"round {label} trained nothing (train summary: checkpoint none), so it has no checkpoint"
    )
    for earlier in range(round_index - 1, -1, -1):
        if _train_summary(run, earlier).get("checkpoint") != "none":
            return (
                f"{head} of its own: its student is round {round_label(earlier)}'s checkpoint, "
                f"handed on unchanged; promote that round instead (--round {earlier})"
            )
    return f"{head}: its student is still the initial student, which there is no need to promote"


def _student_base(cfg: RunConfig) -> tuple[str, Path]:
    """The base the adapters sit on: the config's student path (`tiny:` resolved)."""
    from iterkd.generation.factory import resolve_model_path

    spec = cfg.models.student
    if spec.backend == "openai" or not spec.path:
        raise PromoteError("the student is an openai endpoint: it has no local base to merge into")
    return spec.path, resolve_model_path(spec.path)


def _eval_metrics(run: RunDir, round_index: int | None) -> dict[str, float]:
    summary = read_json(run.stage_dir(round_index, "evaluate") / "summary.json")
    return {k: v for k, v in summary.items() if k.startswith("pass@")}


def questions_hash(path: Path) -> str:
    """sha256 of a question file's records, each in canonical JSON, in sorted order: the same
    questions give the same hash whatever their order or formatting."""
    if not path.is_file():
        raise PromoteError(f"{path} is missing: the evaluation's question set is unknown")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = sorted(json.dumps(json.loads(x), sort_keys=True) for x in lines if x.strip())
    return hashlib.sha256("\n".join(records).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ the gate
def _reference(run: RunDir, parent: dict[str, Any] | None, metric: str) -> Reference:
    if parent is not None:
        source = f"promoted round {parent.get('round_label')} of run {parent.get('run_name')}"
        value = parent.get("metrics", {}).get(metric)
        return Reference(value, parent.get("data", {}).get("eval_questions"), source)
    if not run.is_complete(None, "evaluate"):
        raise PromoteError(f"{run.path}: the baseline evaluation is not complete: nothing to beat")
    value = _eval_metrics(run, None).get(metric)
    eval_hash = questions_hash(run.stage_dir(None, "evaluate") / "questions.jsonl")
    return Reference(value, eval_hash, "the initial student")


def _judge(
    candidate: Candidate, reference: Reference, settings: PromoteConfig, force: bool
) -> Gate:
    """Compare the candidate with the reference; refuse unless it beats it or `force`."""
    gate = Gate(
        metric=settings.metric,
        margin=settings.margin,
        candidate=candidate.metrics[settings.metric],
        reference=reference.value,
        reference_source=reference.source,
        same_eval_set=reference.eval_hash == candidate.eval_hash,
        forced=force,
    )
    if force or gate.beats:
        return gate
    prefix = f"round {candidate.label} not promoted"
    if reference.value is None:
        raise PromoteError(f"{prefix}: {reference.source} has no {settings.metric} to compare with")
    if not gate.same_eval_set:
        raise PromoteError(
            f"{prefix}: it was evaluated on another question set than {reference.source} (eval "
            f"questions {candidate.eval_hash} vs {reference.eval_hash}): their {gate.metric} "
            "cannot be compared (--force promotes it anyway)"
        )
    raise GateError(f"{prefix}: {gate.comparison()} (--force promotes it anyway)", gate)


# ------------------------------------------------------------------ the target directory
def read_lineage(target: Path) -> dict[str, Any] | None:
    """The lineage of the promotion in `target`; None if there is none (no or an empty
    directory). Anything else there is refused: a promotion replaces only a promotion."""
    if not target.exists():
        return None
    if not target.is_dir():
        raise PromoteError(f"{target} exists and is not a directory: refusing to replace it")
    path = target / LINEAGE
    if not path.is_file():
        if any(target.iterdir()):
            raise PromoteError(
                f"{target} exists and is not a promotion (no {LINEAGE}): refusing to replace "
                "it; choose another --to or move it away"
            )
        return None
    try:
        lineage = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PromoteError(f"{path} is corrupted (not JSON: {exc}): move {target} away") from None
    if not isinstance(lineage, dict):
        raise PromoteError(f"{path} is corrupted (not a JSON object): move {target} away")
    return lineage


def _is_current(lineage: dict[str, Any] | None, run: RunDir, round_index: int) -> bool:
    return (
        lineage is not None
        and lineage.get("run_dir") == str(run.path.resolve())
        and lineage.get("round") == round_index
    )


def _old_dir(target: Path) -> Path:
    return target.with_name(f"{target.name}.old")


def _tmp_dir(target: Path, pid: int | str) -> Path:
    return target.with_name(f"{target.name}.tmp-{pid}")


def recover_target(target: Path) -> None:
    """Finish or undo a swap that a kill interrupted, and drop the temporary folders of dead
    promotions. `DIR.old` with `DIR` present: the new promotion is in, the old one goes;
    without `DIR`: the new one never arrived, the old one is put back."""
    old = _old_dir(target)
    if old.exists():
        if not (old / LINEAGE).is_file():
            raise PromoteError(f"{old} is not a promotion left by iterkd: move it away")
        if target.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, target)
        fsync_dir(target.parent)
    for tmp in target.parent.glob(f"{target.name}.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if tmp.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp)


def _alive(pid: int) -> bool:
    """Whether another process with this pid runs (its promotion may still be writing)."""
    if pid == os.getpid():
        return False  # our own leftover: this process promotes one thing at a time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _install(
    run: RunDir,
    cfg: RunConfig,
    state: RunState,
    candidate: Candidate,
    gate: Gate,
    parent: dict[str, Any] | None,
    target: Path,
) -> dict[str, Any]:
    """Export into `DIR.tmp-<pid>`, then swap it in: a failure before the swap leaves `DIR`
    as it was; a kill during the swap is repaired by `recover_target` on the next start."""
    from iterkd.atomic import fsync_tree
    from iterkd.promote_export import export_model, weights_digest

    tmp = _tmp_dir(target, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_model(
            candidate.base, candidate.checkpoint if candidate.kind == "adapter" else None, tmp
        )
        lineage = _lineage(run, cfg, state, candidate, gate, parent, weights_digest(tmp))
        atomic_write_text(tmp / LINEAGE, json.dumps(lineage, indent=1) + "\n")
        atomic_write_text(tmp / CARD, model_card(lineage, target))
        fsync_tree(tmp)
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return lineage


def _swap(tmp: Path, target: Path) -> None:
    old = _old_dir(target)
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.rename(old, target)
        raise
    fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


# ------------------------------------------------------------------ lineage
def _lineage(
    run: RunDir,
    cfg: RunConfig,
    state: RunState,
    candidate: Candidate,
    gate: Gate,
    parent: dict[str, Any] | None,
    weights: str,
) -> dict[str, Any]:
    baseline = _eval_metrics(run, None) if run.is_complete(None, "evaluate") else None
    return {
        "format": LINEAGE_FORMAT,
        "run_dir": str(run.path.resolve()),
        "run_name": state.name,
        "round": candidate.round,
        "round_label": candidate.label,
        "checkpoint": {
            "kind": candidate.kind,
            "path": str(candidate.checkpoint.resolve()),
            "base": candidate.base_name,
            "base_path": str(candidate.base.resolve()),
            "base_weights_sha256": weights_hash(candidate.base),
        },
        "weights_sha256": weights,
        "metrics": candidate.metrics,
        "baseline_metrics": baseline,
        "gate": asdict(gate) | {"passed": gate.beats},
        "evaluation": _evaluation(run, cfg, candidate.round),
        "config_hash": state.config_hash,
        "data": _data_hashes(run, cfg, candidate),
        "training": {round_label(r): _train_summary(run, r) for r in range(candidate.round + 1)},
        "parent": parent,
        "iterkd_version": __version__,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _evaluation(run: RunDir, cfg: RunConfig, round_index: int) -> dict[str, Any]:
    summary = read_json(run.stage_dir(round_index, "evaluate") / "summary.json")
    settings = cfg.evaluate
    return {
        "questions": summary.get("questions"),
        "n": settings.n,
        "temperature": settings.temperature,
        "max_new_tokens": settings.max_new_tokens,
    }


def _data_hashes(run: RunDir, cfg: RunConfig, candidate: Candidate) -> dict[str, Any]:
    """What the model saw and was measured on: the eval questions and each round's frozen pool
    (round 000's pool is the training set as the run read it)."""
    pools = {}
    for r in range(candidate.round + 1):
        path = run.stage_dir(r, "teacher") / "questions.jsonl"
        pools[round_label(r)] = questions_hash(path) if path.is_file() else None
    return {
        "eval_questions": candidate.eval_hash,
        "round_pools": pools,
        "train_source": cfg.data.train.model_dump(mode="json"),
        "eval_source": cfg.data.eval.model_dump(mode="json"),
    }


# ------------------------------------------------------------------ command line
def add_promote_parser(commands: Any) -> None:
    """`iterkd promote RUN [--round N] [--to DIR] [--force] [--metric M] [--margin X]`."""
    parser = commands.add_parser(
        "promote",
        help="export a round's student as a standalone model if it beats the promoted one",
    )
    parser.add_argument("run_dir")
    parser.add_argument("--round", type=int, help="default: the latest evaluated round")
    parser.add_argument("--to", help="target directory (default: promote.to, else RUN/promoted)")
    parser.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    parser.add_argument("--metric", help="an evaluate pass@k key (default: promote.metric)")
    parser.add_argument("--margin", type=float, help="default: promote.margin")
    parser.set_defaults(handler=promote_command)


def promote_command(args: argparse.Namespace) -> int:
    result = promote(
        args.run_dir, args.round, args.to, args.force, metric=args.metric, margin=args.margin
    )
    print(result.outcome)
    return 0

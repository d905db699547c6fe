"""The `iterkd` command. Each subcommand is a small function; errors end with one clear line on
stderr and a non-zero exit, never a traceback for bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _tiny_models(args: argparse.Namespace) -> int:
    from iterkd.tiny_models import build_tiny_models, default_dir, measure_fractions

    out = Path(args.out) if args.out else default_dir()
    manifest = build_tiny_models(out, seed=args.seed)
    if not args.skip_eval:
        manifest = measure_fractions(out)
    summary = {"out": str(out), **{k: v for k, v in manifest.items() if k != "models"}}
    print(json.dumps(summary, indent=2))
    return 0


def _load(args: argparse.Namespace):
    from iterkd.config import load_config

    return load_config(args.config, args.overrides)


def _validate(args: argparse.Namespace) -> int:
    from iterkd.checks import validate_config

    cfg = _load(args)
    for line in validate_config(cfg, args.config):
        print(line)
    rounds = f"{cfg.rounds} round{'s' if cfg.rounds != 1 else ''}"
    print(f"{args.config}: OK ({rounds}, run directory {cfg.runs_dir}/{cfg.name})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from iterkd.checks import validate_config
    from iterkd.controller import start_run

    cfg = _load(args)
    validate_config(cfg, args.config)  # before any compute is spent
    state = start_run(cfg, args.run_dir)
    return _finished(args.run_dir or f"{cfg.runs_dir}/{cfg.name}", state)


def _resume(args: argparse.Namespace) -> int:
    from iterkd.controller import resume_run

    state = resume_run(args.run_dir, args.overrides, config=args.config)
    return _finished(args.run_dir, state)


def _finished(run_dir: str, state) -> int:
    from iterkd.rundir import RunDir
    from iterkd.status import format_status

    print(format_status(RunDir(run_dir)))
    return 0


def _status(args: argparse.Namespace) -> int:
    from iterkd.rundir import RunDir
    from iterkd.status import format_status

    print(format_status(RunDir(args.run_dir)))
    return 0


def _models_import(args: argparse.Namespace) -> int:
    from iterkd.gguf_import import import_gguf

    to = Path(args.to).expanduser()
    existed = to.is_dir() and any(to.iterdir())
    manifest = import_gguf(args.source, to)
    files = sorted(p.name for p in to.iterdir() if p.is_file())
    summary = {"to": str(to), "written": not existed, "files": files, **manifest}
    print(json.dumps(summary, indent=2))
    if existed:
        print(f"{to} already holds this import (same sha256): nothing written", file=sys.stderr)
    return 0


def _models_prune(args: argparse.Namespace) -> int:
    from iterkd.generation.factory import resolve_model_path
    from iterkd.pruning import prune_checkpoint
    from iterkd.questions import calibration_texts

    texts = calibration_texts(args.calibration) if args.method == "block-influence" else []
    manifest = prune_checkpoint(
        resolve_model_path(args.source), Path(args.to).expanduser(), args.drop, args.method,
        texts, args.calibration,
    )  # fmt: skip
    print(json.dumps({"to": args.to, **manifest}, indent=2))
    return 0


def _add_models_commands(commands) -> None:
    """`iterkd models <action>`: one group for the commands that make or manage model folders;
    each action is a parser of its own under it."""
    models = commands.add_parser("models", help="import and manage model checkpoints")
    actions = models.add_subparsers(dest="models_command", required=True)
    imp = actions.add_parser(
        "import",
        help="a GGUF file (or smollm2-135m-instruct) as a standard Hugging Face checkpoint",
    )
    imp.add_argument("source", help="FILE.gguf, or a known name: smollm2-135m-instruct")
    imp.add_argument("--to", required=True, help="output directory (must not exist, or be empty)")
    imp.set_defaults(handler=_models_import)
    prune = actions.add_parser(
        "prune", help="a smaller student: the checkpoint with N decoder layers dropped"
    )
    prune.add_argument("--from", dest="source", required=True,
                       help="a checkpoint folder, gguf:FILE or gguf:smollm2-135m-instruct")  # fmt: skip
    prune.add_argument("--drop", type=int, required=True, help="how many decoder layers to drop")
    prune.add_argument("--method", choices=["block-influence", "last"], default="block-influence",
                       help="block-influence: the N least influential layers (ShortGPT); last: "
                       "the N deepest before the final one")  # fmt: skip
    prune.add_argument("--to", required=True, help="output directory (must not exist, or be empty)")
    prune.add_argument("--calibration", default="seed",
                       help="text for block influence: seed, heldout, humaneval or a questions "
                       "JSONL file (prompts with their reference solutions)")  # fmt: skip
    prune.set_defaults(handler=_models_prune)


def _add_cycle_commands(commands) -> None:
    overrides = {"nargs": "*", "metavar": "key.path=value", "help": "config overrides"}
    run = commands.add_parser("run", help="start a distillation run (or continue it)")
    run.add_argument("config", help="a YAML config, e.g. configs/tiny-cpu.yaml")
    run.add_argument("overrides", **overrides)
    run.add_argument("--run-dir", help="default: <runs_dir>/<name> from the config")
    run.set_defaults(handler=_run)
    resume = commands.add_parser("resume", help="finish a run from where it stopped")
    resume.add_argument("run_dir")
    resume.add_argument("overrides", **overrides)
    resume.add_argument("--config", help="a changed config: only safe keys may differ")
    resume.set_defaults(handler=_resume)
    status = commands.add_parser("status", help="rounds x stages table and headline metrics")
    status.add_argument("run_dir")
    status.set_defaults(handler=_status)
    validate = commands.add_parser("validate", help="check a config before spending compute")
    validate.add_argument("config")
    validate.add_argument("overrides", **overrides)
    validate.set_defaults(handler=_validate)
    from iterkd.report.cli import add_report_parser

    add_report_parser(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iterkd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser(
        "tiny-models",
        help="build the tiny teacher, student and judge (deterministic, ~2 min on CPU)",
    )
    tiny.add_argument("--out", help="output directory (default: ~/.cache/iterkd/tiny-models-vN)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--skip-eval", action="store_true", help="do not measure pass fractions")
    tiny.set_defaults(handler=_tiny_models)
    _add_cycle_commands(commands)
    _add_models_commands(commands)
    from iterkd.promote import add_promote_parser

    add_promote_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from iterkd.controller import ControllerError

    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:
        print(f"iterkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ControllerError as exc:
        print(f"iterkd {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"iterkd {args.command}: interrupted; `iterkd resume` continues", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

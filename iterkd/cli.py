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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:
        print(f"iterkd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

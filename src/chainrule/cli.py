"""The `chainrule` command."""

from __future__ import annotations

import argparse
import sys

from .errors import ChainruleError
from .explain import cli as explain_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chainrule", description=(
        "Neural networks trained by backpropagation on NumPy."))
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a 64-32-16-10 network on the bundled 8x8 digits",
                          description="Train a 64-32-16-10 network on the bundled 8x8 digits,"
                          " print test accuracy and per-class precision/recall, save model and plot.")
    demo.add_argument("--out-dir", default="runs", help="folder for the model and plot (default: runs)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    explain_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "explain":
            return explain_cli.run(args)
        if args.command == "demo":
            from .demo import main as demo_main

            demo_main(args.out_dir, verbose=0 if args.quiet else 1)
    except ChainruleError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 1
    return 0

"""``chainrule playground``: serve the playground page and open it in a browser.

    chainrule playground [--port 0] [--host 127.0.0.1] [--no-browser] [--dataset spiral] [--seed 1]

chainrule/cli.py only registers the subcommand (``add_parser``) and calls ``run``.
"""

from __future__ import annotations

import argparse
import sys
import threading

from .config import DATASETS

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``playground`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "playground", help="a local web page that trains a small network and shows every number",
        description="Start a local web page (Python's own http.server; nothing is downloaded) where a small"
        " network trains on 2-D data while you watch: weights, gradients, activations and δ on every edge"
        " and unit, heat maps, loss curves, and a backprop mode that walks one sample through the chain rule."
        " Stop it with Ctrl-C.")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, a free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only); another address lets other"
                   " machines control the page")
    p.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    p.add_argument("--dataset", choices=[d for d in DATASETS if d != "csv"], help="initial data set")
    p.add_argument("--seed", type=int, help="initial seed (data, weights and batch order)")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")
    return p


def _wait(playground) -> None:
    """Block until Ctrl-C (tests replace this)."""
    threading.Event().wait()


def run(args) -> int:
    """Serve until interrupted; return the exit code."""
    from .server import serve

    config = {k: v for k, v in (("dataset", args.dataset), ("seed", args.seed)) if v is not None}
    if not 0 <= args.port <= 65535:
        print(f"chainrule: error: --port must be from 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        playground = serve(args.host, args.port, config or None, open_browser=not args.no_browser,
                           verbose=args.verbose)
    except OSError as exc:
        print(f"chainrule: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: anyone who can reach this address can control the page",
              file=sys.stderr)
    print(f"chainrule playground: {playground.url}  (Ctrl-C to stop)", flush=True)
    try:
        _wait(playground)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        playground.close()
    return 0

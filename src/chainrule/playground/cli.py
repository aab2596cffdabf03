"""``chainrule playground``: serve the playground page and open it in a browser.

    chainrule playground [--port 0] [--host 127.0.0.1 [--allow-remote]] [--no-browser] [--dataset spiral] [--seed 1]

chainrule/cli.py only registers the subcommand (``add_parser``) and calls ``run``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import warnings

from .config import DATASETS


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
                   help="address to bind (default: 127.0.0.1, this machine only); an address other than a"
                   " loopback one is refused unless --allow-remote is given")
    p.add_argument("--allow-remote", action="store_true",
                   help="let --host be an address other machines can reach: anyone who reaches it can control"
                   " the page and read its data")
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
    from .server import is_loopback, serve

    config = {k: v for k, v in (("dataset", args.dataset), ("seed", args.seed)) if v is not None}
    if not 0 <= args.port <= 65535:
        print(f"chainrule: error: --port must be from 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        print(f"chainrule: error: --host {args.host!r} is not a loopback address: anyone who can reach it could"
              " control the page and read its data; add --allow-remote to bind it anyway", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the warning is printed below, once
            playground = serve(args.host, args.port, config or None, open_browser=not args.no_browser,
                               verbose=args.verbose, allow_remote=args.allow_remote)
    except OSError as exc:
        print(f"chainrule: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    if remote:
        print(f"WARNING: listening on {args.host!r}: anyone who can reach this address can control the page,"
              " read its data and use this machine's CPU", file=sys.stderr)
    print(f"chainrule playground: {playground.url}  (Ctrl-C to stop)", flush=True)
    try:
        _wait(playground)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        playground.close()
    return 0

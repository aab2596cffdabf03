"""``chainrule explain``: the trace of a built-in example or of a saved model, on the command line.

    chainrule explain --example mazur [--format text|markdown|latex|html] [--lr 0.5] [--steps N]
    chainrule explain MODEL.npz --input "0.05,0.1" --target "0.01,0.99" [--loss sse]
    chainrule explain model.npz --input "4.1,black,3" --target cat      (a model from `chainrule train`)

The command's logic lives here; chainrule/cli.py only registers it (``add_parser``) and calls
``run``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import ChainruleError, ConfigError
from .examples import EXAMPLES, example

FORMATS = ("text", "markdown", "latex", "html")
_EXTENSIONS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".tex": "latex", ".html": "html",
               ".htm": "html"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``explain`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "explain", help="write out the chain rule of a small network, number by number",
        description="Run one forward and backward pass of a small network and write out every step: each"
        " unit's weighted sum, the error, every weight's gradient as its chain of factors, a"
        " finite-difference check of each gradient and, with --lr, the update. Give a built-in"
        " --example or a saved MODEL with --input and --target.")
    p.add_argument("model", nargs="?", metavar="MODEL", help="a model saved with net.save() (.npz)")
    p.add_argument("--example", choices=list(EXAMPLES), help="a built-in example")
    p.add_argument("--input", metavar="VALUES",
                   help='input of MODEL: comma-separated numbers, samples separated by ";" ("0.05,0.1");'
                   " for a model from `chainrule train`, a raw CSV row of its input columns (\"4.1,black,3\"),"
                   " encoded as predict does")
    p.add_argument("--target", metavar="VALUES",
                   help='target of MODEL, the same way ("0.01,0.99"; a class index or a class name the model'
                   " stores for crossentropy; a value in the target's units for a `chainrule train` regression)")
    p.add_argument("--loss", default=None, choices=["sse", "mse", "bce", "crossentropy"],
                   help="loss for MODEL (default: the loss the model file records it was trained with, else"
                   " sse, E = ½ Σ (target - out)²)")
    p.add_argument("--lr", type=float, metavar="ETA",
                   help="learning rate of the update to show (an example has its own default)")
    p.add_argument("--steps", type=int, default=1, metavar="N", help="number of gradient-descent steps (default 1)")
    p.add_argument("--notation", choices=["scalar", "matrix"],
                   help="scalar: every unit and weight (the default for Dense layers); matrix: one line per layer"
                        " (the default, and the only notation, for convolutions and attention)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --out's extension, else text)")
    p.add_argument("--digits", type=int, default=9, help="digits shown per number (default 9)")
    p.add_argument("--width", type=int, default=100, help="text width in columns (default 100)")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of the terminal")
    p.set_defaults(run=run)
    return p


def parse_values(text: str, name: str) -> np.ndarray:
    """ "0.05,0.1" -> [[0.05, 0.1]];  "0,0;0,1" -> two rows."""
    try:
        rows = [[float(v) for v in row.replace(" ", "").split(",") if v != ""] for row in text.split(";")
                if row.strip()]
    except ValueError:
        raise ConfigError(f"--{name} expects comma-separated numbers (samples separated by ';'),"
                          f" got {text!r}") from None
    if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
        raise ConfigError(f"--{name} expects the same count of numbers in every sample, got {text!r}")
    return np.array(rows)


def build_trace(args):
    if (args.model is None) == (args.example is None):
        raise ConfigError("chainrule explain needs either --example NAME or a saved MODEL (not both);"
                          f" examples: {', '.join(EXAMPLES)}")
    common = {"notation": args.notation, "n_steps": args.steps, "digits": args.digits}
    if args.example is not None:
        if args.input is not None or args.target is not None:
            raise ConfigError("--input and --target go with a saved MODEL; an example has its own data")
        return example(args.example).explain(lr=args.lr, **common)
    from ..network import load
    from .build import explain

    if args.input is None or args.target is None:
        raise ConfigError(f"explain {args.model} needs --input and --target, e.g."
                          ' --input "0.05,0.1" --target "0.01,0.99"')
    from ..csvio import preprocessor_of

    net = load(args.model)
    pre = preprocessor_of(net)
    loss = args.loss or _trained_loss(net) or "sse"
    notes = []
    x = _encode_input(net, pre, args.input, notes) if pre is not None else parse_values(args.input, "input")
    if loss == "crossentropy" and "," not in args.target:
        y = np.array([_class_index(v.strip(), pre) for v in args.target.split(";") if v.strip()])
    else:
        y = parse_values(args.target, "target")
        if pre is not None and pre.task == "regression":
            info = pre.target_info
            y = (y - info["mean"]) / info["scale"]
            notes.append(f"target standardized as in training: (y - {info['mean']:.6g}) / {info['scale']:.6g}")
    if net.scaler is not None:
        x = net.scaler.transform(x)
        notes.append(f"input scaled by the model's {type(net.scaler).__name__} before the network")
    trace = explain(net, loss, x, y, lr=args.lr, title=f"explain: {args.model}", **common)
    if args.loss is None and loss != "sse":
        notes.append(f"loss {loss}: the one the model was trained with (--loss chooses another)")
    trace.description.extend(notes)
    return trace


_LOSS_NAMES = {"SSE": "sse", "MSE": "mse", "CrossEntropy": "crossentropy", "BCE": "bce",
               "BinaryCrossEntropy": "bce"}


def _trained_loss(net) -> str | None:
    """The loss the model file records (``chainrule train`` stores it), as a --loss name."""
    settings = ((getattr(net, "metadata", None) or {}).get("training") or {}).get("settings") or {}
    return _LOSS_NAMES.get(str(settings.get("loss")))


def _class_index(text: str, pre) -> int:
    """A class named as the model stores it ("cat"), else a class index ("1")."""
    classes = pre.classes if pre is not None and pre.classes else []
    if text in classes:
        return classes.index(text)
    try:
        index = int(float(text))
    except ValueError:
        index = None
    if index is None or (classes and not 0 <= index < len(classes)):
        shown = f"; the model's classes are: {', '.join(classes[:20])}" if classes else ""
        raise ConfigError(f"--target expects a class index or a class name{shown}; got {text!r}")
    return index


def _encode_input(net, pre, text: str, notes: list) -> np.ndarray:
    """--input for a model from ``chainrule train``: raw CSV rows of its input columns, encoded by
    the stored preprocessing (as ``chainrule predict`` does); numbers already encoded also pass."""
    import csv

    from ..csvio import Table

    names = [f["name"] for f in pre.features]
    rows = [[cell.strip() for cell in row] for row in csv.reader([s for s in text.split(";") if s.strip()])]
    if rows and all(len(row) == len(names) for row in rows):
        columns = [[row[j] for row in rows] for j in range(len(names))]
        table = Table("--input", names, columns, np.arange(1, len(rows) + 1))
        x, unseen = pre.transform(table)
        notes.append(f"input {'; '.join(','.join(r) for r in rows)} encoded by the model's stored preprocessing"
                     f" ({', '.join(names)} -> {', '.join(pre.input_names)})"
                     + (f"; {unseen} unseen categories are all zeros" if unseen else ""))
        return x
    if rows and all(len(row) == pre.n_inputs for row in rows):
        return parse_values(text, "input")
    raise ConfigError(f"--input expects a raw row of the model's {len(names)} input columns ({', '.join(names)}),"
                      f" samples separated by ';', or {pre.n_inputs} encoded numbers; got {text!r}")


def render(trace, fmt: str, width: int) -> str:
    if fmt == "text":
        return trace.to_text(width=width)
    return {"markdown": trace.to_markdown, "latex": trace.to_latex, "html": trace.to_html}[fmt]()


def run(args) -> int:
    """Run ``chainrule explain`` with parsed ``args``; return the exit code."""
    try:
        fmt = args.format
        if fmt is None and args.out:
            suffix = "." + args.out.rsplit(".", 1)[-1].lower() if "." in args.out else ""
            fmt = _EXTENSIONS.get(suffix)
        if args.out and args.model:
            from ..cli import _refuse_overwrite

            _refuse_overwrite({"MODEL": args.model}, {"--out": args.out})
        trace = build_trace(args)
        text = render(trace, fmt or "text", args.width)
        if args.out:
            from ..io import atomic_write_text

            atomic_write_text(args.out, text)
            print(f"wrote {args.out} ({fmt or 'text'})", file=sys.stderr)
        else:
            try:
                sys.stdout.write(text)
            except UnicodeEncodeError:
                enc = sys.stdout.encoding or "ascii"
                sys.stdout.write(text.encode(enc, "replace").decode(enc))
    except ChainruleError as exc:
        print(f"chainrule explain: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"chainrule explain: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m chainrule.explain.cli``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="chainrule")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["explain", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    raise SystemExit(main())

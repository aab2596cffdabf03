"""The `chainrule` command: train on a CSV file, predict, evaluate, describe a model, run the demo.

    chainrule train DATA.csv --target COLUMN [options]   -> model.npz (preprocessing inside)
    chainrule predict model.npz DATA.csv [--out predictions.csv] [--proba]
    chainrule evaluate model.npz DATA.csv [--target COLUMN]
    chainrule info model.npz
    chainrule demo

Exit codes: 0 success, 1 an error (bad data or model file; one line on stderr naming the file,
line and column), 2 bad usage (unknown option, bad argument value), 130 training stopped by
Ctrl-C or SIGTERM (the checkpoint to resume from is named). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ._checks import check_number, describe_number
from .errors import ChainruleError, ConfigError
from .registry import lookup, names

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# hidden activations and optimizers by the names of chainrule.registry (softmax is an output layer)
ACTIVATIONS = tuple(n for n in names("activation") if n != "softmax")
OPTIMIZERS = tuple(names("optimizer"))
LOSSES = ("auto", "crossentropy", "mse", "sse")


# --- argument types (a bad value is a usage error, exit code 2) ------------------------------
def _sizes(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 64,32, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _number(convert, **accepted):
    """An argparse ``type``: ``convert`` the text, then check it as the library does (check_number)."""
    def parse(text: str):
        try:
            value = convert(text)
            check_number(value, "value", **accepted)
        except ValueError:  # ConfigError is a ValueError
            expected = describe_number(**accepted, say_finite=True)
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        return value
    return parse


_fraction = _number(float, low=0, high=1, high_open=True)
_positive_int = _number(int, low=1, integer=True)
_non_negative_int = _number(int, low=0, integer=True)
_positive_float = _number(float, low=0, low_open=True)
_non_negative_float = _number(float, low=0)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _add_csv_options(p, drop: bool = False) -> None:
    """How a CSV file is read: delimiter, decimal mark, text encoding (and dropping rows)."""
    p.add_argument("--delimiter", default=",", help="field separator (default: ,)")
    p.add_argument("--decimal", choices=(".", ","), default=".",
                   help="decimal mark of the numbers (default: .; ',' reads 36,9 as 36.9)")
    p.add_argument("--encoding", default="utf-8",
                   help="text encoding of the file (default: utf-8; cp1252 or latin-1 for many spreadsheet exports)")
    if drop:
        p.add_argument("--drop-incomplete", action="store_true",
                       help="leave out the rows with a missing value (blank, NA, ?) in a column used, and say how many")


def _refuse_overwrite(inputs: dict, outputs: dict) -> None:
    """A ConfigError when an output path names an input file (after resolving links)."""
    for out_option, out in outputs.items():
        if not out or str(out) == "-":
            continue
        for in_option, path in inputs.items():
            same = os.path.realpath(out) == os.path.realpath(path)
            if not same and os.path.exists(out) and os.path.exists(path):
                same = os.path.samefile(out, path)
            if same:
                raise ConfigError(f"{out_option} {out} is the input file ({in_option} {path}); writing it would"
                                  " destroy the input: choose another output file")


SMALL_DATA_ROWS = 10_000  # below this many rows, train holds out data and stops early by default
SMALL_DATA_SPLIT, SMALL_DATA_PATIENCE = 0.2, 10
SMALL_DATA_MIN_SPLIT = 50  # fewer rows than this: no hold-out (early stopping watches the training loss)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(sizes: list[int], optimizer: str, batch_size: int, early_stopping: bool,
                  itemsize: int = 4, at_least: bool = False) -> None:
    """A ConfigError, before anything is allocated, when the network cannot fit in memory.

    Training holds the weights, their gradients, the optimizer's state (adam and adamw two
    arrays per weight, the others one), a best-weights copy with early stopping, and a batch's
    activations and their gradients. ``at_least``: the sizes of the input and output layers
    are not known yet (1 stands for each), so the count is a lower bound.
    """
    total = physical_memory()
    if not total:
        return
    n_params = sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))
    state = 2 if optimizer in ("adam", "adamw") else 1
    copies = 2 + state + (1 if early_stopping else 0)
    need = n_params * itemsize * copies + 4 * batch_size * sum(sizes) * itemsize
    if need > total:
        gib = 2.0 ** 30
        raise ConfigError(
            f"--hidden {','.join(map(str, sizes[1:-1]))} makes a network of {'at least ' if at_least else ''}"
            f"{n_params:,} parameters; training it"
            f" needs about {need / gib:.1f} GiB (weights, gradients and {optimizer}'s state, float32), more"
            f" than this machine's {total / gib:.1f} GiB of memory: choose smaller layers")


# --- the parser --------------------------------------------------------------------------------
def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The argument parser, and the handlers of subcommands that other modules add (explain)."""
    parser = argparse.ArgumentParser(prog="chainrule", description=(
        "Neural networks trained by backpropagation on NumPy: train on a CSV file, predict,"
        " evaluate, inspect a model. Exit codes: 0 ok, 1 error, 2 usage."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_info(sub)
    demo = sub.add_parser("demo", help="train a 64-32-16-10 network on the bundled 8x8 digits",
                          description="Train a 64-32-16-10 network on the bundled 8x8 digits,"
                          " print test accuracy and per-class precision/recall, save model and plot.")
    demo.add_argument("--out-dir", default="runs", help="folder for the model and plot (default: runs)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser, _optional_subcommands(sub)


def _optional_subcommands(sub) -> dict:
    """Subcommands defined elsewhere: ``chainrule.explain.cli`` adds ``explain``."""
    import importlib
    import importlib.util

    handlers = {}
    for command, module_name in (("explain", ".explain.cli"), ("playground", ".playground.cli")):
        try:
            spec = importlib.util.find_spec(module_name, __package__)
        except ModuleNotFoundError:  # the package above it is missing
            spec = None
        if spec is None:
            continue
        module = importlib.import_module(module_name, __package__)
        module.add_parser(sub)
        handlers[command] = module.run
    return handlers


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a network on a CSV file and save it with its preprocessing",
        description="Train a fully connected network on DATA.csv. Classification (a text target, or"
        " a few whole numbers) or regression is inferred; text columns are one-hot encoded, inputs"
        " standardized; all of it is stored in the model file, so `predict` takes the raw CSV.")
    p.add_argument("data", metavar="DATA.csv", help="training data with a header line")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    p.add_argument("--hidden", type=_sizes, default=[64, 32], metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default: 64,32; 'none' for no hidden layer)")
    p.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default: relu)")
    p.add_argument("--dropout", type=_fraction, default=0.0, help="dropout after each hidden layer (default: 0)")
    p.add_argument("--loss", choices=LOSSES, default="auto",
                   help="auto: crossentropy for classification, mse for regression")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="(default: adam)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: the optimizer's, 0.001 for adam, 0.01 for sgd)")
    p.add_argument("--weight-decay", type=_non_negative_float, default=0.0, help="L2 weight decay (default: 0)")
    p.add_argument("--epochs", type=_positive_int, default=100, help="(default: 100)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="(default: 32)")
    p.add_argument("--validation-split", type=_fraction, default=None, metavar="FRACTION",
                   help="hold out this fraction of the rows (stratified for classification) for validation"
                   f" (default: {SMALL_DATA_SPLIT} below {SMALL_DATA_ROWS:,} rows, else 0)")
    p.add_argument("--early-stopping", type=_non_negative_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement of the validation loss (of the"
                   " training loss without --validation-split) and keep the best weights; 0: off"
                   f" (default: {SMALL_DATA_PATIENCE} below {SMALL_DATA_ROWS:,} rows, else off)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True,
                   help="z-score the inputs (and a regression target) (default: on)")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="override the inferred task")
    p.add_argument("--categorical", type=_names, default=[], metavar="COLUMNS",
                   help="one-hot encode these columns even though they hold numbers")
    p.add_argument("--ignore", type=_names, default=[], metavar="COLUMNS",
                   help="columns that are not inputs (ids, free text)")
    p.add_argument("--max-categories", type=_positive_int, default=100,
                   help="most distinct values a text column may have (default: 100)")
    _add_csv_options(p, drop=True)
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of weights, split, shuffling (default: 0)")
    p.add_argument("--out", default="model.npz", help="model file to write (default: model.npz)")
    p.add_argument("--plot", default=None, metavar="curves.png", help="save loss and metric curves (needs matplotlib)")
    p.add_argument("--log", default=None, metavar="log.csv", help="write each epoch's loss and metrics to a CSV file")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="training state to write after each epoch and on Ctrl-C/SIGTERM (default: OUT.ckpt,"
                   " removed once the model is saved; a named one is kept)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="BATCHES",
                   help="also write the checkpoint every BATCHES batches")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="PATH",
                   help="go on from a checkpoint (default: the --checkpoint path) of the same command")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpiexec -n K chainrule train ...` (needs chainrule[mpi])")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict for each row of a CSV file",
                       description="Predict for each row of DATA.csv with a model from `chainrule train`"
                       " (the raw CSV: the model applies its own encoding and scaling). The file is read"
                       " and written in chunks, so it may be larger than memory.")
    p.add_argument("model", metavar="model.npz")
    p.add_argument("data", metavar="DATA.csv")
    p.add_argument("--out", default=None, metavar="predictions.csv", help="output file (default: stdout)")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.add_argument("--keep", type=_names, default=[], metavar="COLUMNS",
                   help="copy these input columns (e.g. an id) into the output")
    _add_csv_options(p)
    p.add_argument("--chunk-size", type=_positive_int, default=65536, help="rows per chunk (default: 65536)")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="loss and metrics of a model on a labelled CSV file",
                       description="Loss and metrics (accuracy and per-class precision/recall, or"
                       " mse/mae/r2 in the target's units) of a model on DATA.csv.")
    p.add_argument("model", metavar="model.npz")
    p.add_argument("data", metavar="DATA.csv")
    p.add_argument("--target", default=None, metavar="COLUMN",
                   help="the target column (default: the one the model was trained on)")
    _add_csv_options(p, drop=True)
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a model file",
                       description="Layers, parameter count, preprocessing and training metadata of a model file.")
    p.add_argument("model", metavar="model.npz")
    p.add_argument("--json", action="store_true", help="print the stored metadata as JSON")


# --- train -----------------------------------------------------------------------------------
def _drop_incomplete(table, columns: list[int]):
    """``table`` without its rows that miss a value in ``columns``; says how many went (stderr)."""
    from .csvio import CsvError

    mask = table.incomplete_rows(columns)
    n = int(mask.sum())
    if n == table.n_rows:
        raise CsvError(table.path, None, None, f"every one of the {n} rows misses a value; --drop-incomplete"
                       " would leave none")
    if n:
        table = table.drop(mask)
    print(f"chainrule: dropped {n} of {n + table.n_rows} rows with a missing value (--drop-incomplete)",
          file=sys.stderr)
    return table


def _train(args) -> int:
    import numpy as np

    from . import __version__
    from .callbacks import CSVLogger, EarlyStopping, ProgressBar
    from .csvio import TablePreprocessor, read_table
    from .data import Standardizer, train_test_split
    from .io import save
    from .losses import MSE, SSE, CrossEntropy
    from .network import mlp

    root = True  # with --distributed, rank 0 alone prints and writes files
    if args.distributed:
        from .distributed import world_rank

        root = world_rank() == 0
    say = (lambda *a, **k: None) if args.quiet or not root else print
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()
    _refuse_overwrite({"DATA.csv": args.data}, {"--out": args.out, "--log": args.log, "--plot": args.plot,
                                                "--checkpoint": args.checkpoint})
    early = args.early_stopping is None or args.early_stopping > 0
    _check_memory([1, *args.hidden, 1], args.optimizer, args.batch_size, early, at_least=True)  # before reading
    start = time.perf_counter()
    # numeric columns are read straight into float64 arrays, chunk by chunk (no list of strings)
    table = read_table(args.data, args.delimiter, args.encoding, args.decimal, numeric=True,
                       text=[args.target, *args.categorical])
    if args.drop_incomplete:
        table = _drop_incomplete(table, [j for j, name in enumerate(table.header) if name not in args.ignore])
    pre = TablePreprocessor(args.target, task=args.task, categorical=args.categorical, ignore=args.ignore,
                            max_categories=args.max_categories, scale_target=args.standardize).fit(table)
    for note in pre.notes:
        print(f"chainrule: warning: {note}", file=sys.stderr)
    _check_memory([pre.n_inputs, *args.hidden, pre.n_outputs], args.optimizer, args.batch_size, early)
    X, _ = pre.transform(table, dtype=np.float32)  # the network's dtype: no cast copy later
    y = pre.encode_target(table)
    n_rows, header = table.n_rows, table.header
    del table  # the columns are in X now
    classification = pre.task == "classification"
    n_text = sum(f["kind"] == "categorical" for f in pre.features)
    say(f"{args.data}: {n_rows} rows; inputs: {len(pre.features) - n_text} numeric and {n_text}"
        f" text columns -> {pre.n_inputs} network inputs")
    if classification:
        shown = ", ".join(pre.classes[:10]) + (", ..." if len(pre.classes) > 10 else "")
        say(f"target {args.target!r}: classification, {len(pre.classes)} classes ({shown})")
    else:
        say(f"target {args.target!r}: regression")

    split, patience = args.validation_split, args.early_stopping
    if n_rows < SMALL_DATA_ROWS:
        chosen = []
        if split is None and n_rows >= SMALL_DATA_MIN_SPLIT:
            split = SMALL_DATA_SPLIT
            chosen.append(f"holding out {split:.0%} of the rows for validation (--validation-split {split})")
        if patience is None:
            patience = SMALL_DATA_PATIENCE
            chosen.append(f"stopping after {patience} epochs without improvement, keeping the best weights"
                          f" (--early-stopping {patience})")
        if chosen:
            say(f"small data set ({n_rows:,} rows, fewer than {SMALL_DATA_ROWS:,}): {'; '.join(chosen)}."
                " --validation-split 0 and --early-stopping 0 turn this off")
    split, patience = split or 0.0, patience or None
    validation = None
    X_train, y_train = X, y
    if split:
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=split, seed=args.seed, stratify=y if classification else None)
        validation = (X_val, y_val)
    if args.loss == "auto":
        loss = CrossEntropy() if classification else MSE()
    elif args.loss == "crossentropy":
        if not classification:
            raise ChainruleError("--loss crossentropy needs a classification target")
        loss = CrossEntropy()
    else:
        if classification:
            raise ChainruleError(f"--loss {args.loss} is for regression; the target is classification")
        loss = MSE() if args.loss == "mse" else SSE()
    net = mlp([pre.n_inputs, *args.hidden, pre.n_outputs], activation=args.activation, dropout=args.dropout,
              seed=args.seed)
    if args.standardize:
        net.scaler = Standardizer()
    opt_args = {"weight_decay": args.weight_decay}
    if args.lr is not None:
        opt_args["lr"] = args.lr
    optimizer = lookup("optimizer", args.optimizer)(**opt_args)
    callbacks = []
    monitor = "val_loss" if validation else "loss"
    if patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if args.log:
        callbacks.append(CSVLogger(args.log))
    verbose = 0
    if not args.quiet:
        if sys.stderr.isatty():
            callbacks.append(ProgressBar())
        else:
            verbose = 2
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    resume = None if args.resume is None else checkpoint if args.resume is True else args.resume
    history = net.fit(X_train, y_train, loss=loss, optimizer=optimizer, epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed, validation_data=validation,
                      metrics=["accuracy"] if classification else ["r2"], callbacks=callbacks,
                      verbose=verbose, distributed=args.distributed,
                      checkpoint=None if args.distributed else checkpoint,
                      checkpoint_every=args.checkpoint_every or "epoch", resume=resume)
    if history.interrupted:
        where = (" (distributed training writes no checkpoint)" if args.distributed else
                 f"; the training state is in {checkpoint}: run the same command with --resume {checkpoint} to go on")
        if root:
            print(f"chainrule: interrupted after {len(history.epoch)} complete epochs{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    final = {k: v[-1] for k, v in history.history.items() if v}
    metadata = {
        "preprocessing": pre.get_config(),
        "training": {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "chainrule_version": __version__,
            "data": {"file": Path(args.data).name, "rows": n_rows, "columns": header},
            "task": pre.task, "target": args.target,
            "settings": {"hidden": args.hidden, "activation": args.activation, "dropout": args.dropout,
                         "loss": type(loss).__name__, "optimizer": repr(optimizer),
                         "epochs": args.epochs, "batch_size": args.batch_size,
                         "validation_split": split, "early_stopping": patience,
                         "standardize": args.standardize, "seed": args.seed},
            "epochs_run": len(history.epoch), "stopped_early": history.stopped_early,
            "final": final, "seconds": round(time.perf_counter() - start, 3),
        },
    }
    if root:
        save(net, args.out, metadata=metadata, history=history)
        if args.checkpoint is None and not args.distributed and os.path.exists(checkpoint):
            os.unlink(checkpoint)  # the default checkpoint has done its job
    shown = ", ".join(f"{k}={v:.4g}" for k, v in final.items())
    say(f"saved {args.out} ({net.n_params:,} parameters) after {len(history.epoch)} epochs: {shown}")
    if args.plot and root:
        from .plot import history as plot_history

        plot_history(history, path=args.plot, title=f"{Path(args.data).name}: {args.target}")
        say(f"curves saved to {args.plot}")
    return EXIT_OK


# --- predict ---------------------------------------------------------------------------------
def _predict(args) -> int:
    import numpy as np

    from .csvio import CsvError, TableReader, format_number, predict_table, preprocessor_of, spreadsheet_safe, write_csv
    from .network import load

    _refuse_overwrite({"DATA.csv": args.data, "model": args.model}, {"--out": args.out})
    net = load(args.model)
    pre = preprocessor_of(net)
    if args.proba and (pre is None or pre.task != "classification"):
        raise ChainruleError(f"--proba needs a classification model; {args.model} is "
                             + ("a regression model" if pre else "a model without stored preprocessing"))
    unseen_total = 0
    with TableReader(args.data, args.delimiter, args.encoding, args.decimal) as reader:
        keep = [reader.header.index(name) if name in reader.header else None for name in args.keep]
        for name, j in zip(args.keep, keep, strict=True):
            if j is None:
                raise CsvError(args.data, 1, None, "no such column in the header (named in --keep)", name)
        if pre is not None:
            for f in pre.features:
                if f["name"] not in reader.header:
                    raise CsvError(args.data, 1, None, "the model needs this input column; the header lacks it"
                                   f" (inputs: {', '.join(x['name'] for x in pre.features)})", f["name"])
            name = pre.target_info["name"]
            header = [*args.keep, name] + ([f"proba_{c}" for c in pre.classes] if args.proba else [])
        else:
            inputs = _raw_inputs(net, reader.header, args.keep, args.data)
            n_out = net.predict(np.zeros((1, len(inputs)))).shape[1]
            header = [*args.keep, *(f"output_{k}" for k in range(n_out))]

        def rows():
            nonlocal unseen_total
            for chunk in reader.chunks(args.chunk_size):
                kept = [[spreadsheet_safe(v) for v in chunk.columns[j]] for j in keep]
                if pre is None:
                    chunk.check(inputs)
                    X = np.stack([chunk.numbers(j) for j in inputs], axis=1)
                    out = net.predict(X)
                    values = [[format_number(v) for v in row] for row in out]
                else:
                    labels, proba, unseen = predict_table(net, pre, chunk, proba=args.proba)
                    unseen_total += unseen
                    if pre.task == "regression":
                        values = [[format_number(v)] for v in labels]
                    else:
                        values = [[spreadsheet_safe(label)] for label in labels]
                    if proba is not None:
                        values = [v + [format_number(p) for p in row] for v, row in zip(values, proba, strict=True)]
                for i, v in enumerate(values):
                    yield [k[i] for k in kept] + v

        write_csv(args.out, [spreadsheet_safe(h) for h in header], rows())
    if unseen_total:
        print(f"chainrule: note: {unseen_total} values of text columns were not seen in training;"
              " they were encoded as no category", file=sys.stderr)
    if args.out:
        print(f"predictions written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _raw_inputs(net, header: list[str], keep: list[str], data) -> list[int]:
    """The columns a model without stored preprocessing takes: every column but the ``--keep`` ones,
    or every column (kept ones included) when that is the count the network takes."""
    from .csvio import CsvError

    n_in = getattr(net.layers[0], "n_in", None) if net.layers else None
    others = [j for j, name in enumerate(header) if name not in keep]
    if n_in is None or len(others) == n_in:
        if not others:
            raise CsvError(data, 1, None, f"--keep names every column ({', '.join(header)}); none is left as"
                           " the model's input")
        return others
    if len(header) == n_in:
        return list(range(len(header)))
    raise CsvError(data, 1, None, f"the model has no stored preprocessing and takes {n_in} inputs: every column"
                   f" of the file, in order, but the --keep columns; the file has {len(header)} columns"
                   f" ({len(others)} besides --keep)")


# --- evaluate --------------------------------------------------------------------------------
def _evaluate(args) -> int:
    import numpy as np

    from .csvio import preprocessor_of, read_table
    from .losses import MSE, CrossEntropy
    from .metrics import classification_report, r2
    from .network import load

    net = load(args.model)
    pre = preprocessor_of(net)
    if pre is None or pre.target_info is None:
        raise ChainruleError(f"{args.model} holds no preprocessing from `chainrule train`; evaluate it in Python"
                             " with net.evaluate(X, y)")
    if args.target and args.target != pre.target_info["name"]:
        pre.target_info = {**pre.target_info, "name": args.target}
    text = [pre.target_info["name"], *(f["name"] for f in pre.features if f["kind"] == "categorical")]
    table = read_table(args.data, args.delimiter, args.encoding, args.decimal, numeric=True, text=text)
    if args.drop_incomplete:
        used = {pre.target_info["name"], *(f["name"] for f in pre.features)}
        table = _drop_incomplete(table, [j for j, name in enumerate(table.header) if name in used])
    y = pre.encode_target(table)
    X, _ = pre.transform(table)
    out = net.predict(X)
    result: dict = {"rows": table.n_rows}
    if pre.task == "classification":
        pred = out.argmax(axis=1)
        result["loss"] = CrossEntropy().value(out, y)
        result["accuracy"] = float((pred == y).mean())
        report = classification_report(y, pred, n_classes=len(pre.classes), names=pre.classes)
    else:
        values = pre.decode(out)
        truth = y * pre.target_info["scale"] + pre.target_info["mean"]
        result["loss"] = MSE().value(out, y.reshape(-1, 1))
        result["mse"] = float(np.mean((values - truth) ** 2))
        result["rmse"] = float(np.sqrt(result["mse"]))
        result["mae"] = float(np.mean(np.abs(values - truth)))
        result["r2"] = r2(truth, values)
        report = None
    if args.json:
        print(json.dumps(result))
    else:
        name = pre.target_info["name"]
        print(f"{args.data}: {table.n_rows} rows")
        if pre.task == "classification":
            print(f"accuracy: {result['accuracy']:.6g}")
            print(f"loss (cross-entropy, the training loss): {result['loss']:.6g}")
        else:
            print(f"in the units of {name!r}: mse={result['mse']:.6g}  rmse={result['rmse']:.6g}"
                  f"  mae={result['mae']:.6g}  r2={result['r2']:.6g}")
            scaled = (pre.target_info["mean"], pre.target_info["scale"]) != (0.0, 1.0)
            print(f"loss (mse of {'the standardized ' if scaled else ''}{name!r}, as the network sees it):"
                  f" {result['loss']:.6g}")
        if report:
            print()
            print(report)
    return EXIT_OK


# --- info --------------------------------------------------------------------------------------
def _info(args) -> int:
    from .network import load

    net = load(args.model)
    meta = getattr(net, "metadata", {}) or {}
    if args.json:
        print(json.dumps(meta, indent=2, default=str))
        return EXIT_OK
    print(f"{args.model}: chainrule model, {net.dtype}, {net.n_params:,} parameters")
    print(net.summary())
    pre = meta.get("preprocessing")
    if pre:
        parts = []
        n_inputs = 0
        for f in pre["features"]:
            if f["kind"] == "numeric":
                parts.append(f["name"])
                n_inputs += 1
            else:
                cats = f["categories"]
                parts.append(f"{f['name']} (one-hot: {', '.join(cats[:5])}{', ...' if len(cats) > 5 else ''})")
                n_inputs += len(cats)
        print(f"\ninputs: {len(pre['features'])} columns -> {n_inputs} network inputs"
              f"{', standardized' if net.scaler is not None else ''}")
        print("  " + "; ".join(parts))
        target = pre.get("target")
        if target and target["task"] == "classification":
            print(f"target: {target['name']!r}, classification, {len(target['classes'])} classes:"
                  f" {', '.join(target['classes'][:20])}")
        elif target:
            print(f"target: {target['name']!r}, regression (mean {target['mean']:.6g}, scale {target['scale']:.6g})")
    train = meta.get("training")
    if train:
        data = train.get("data", {})
        print(f"\ntrained {train.get('created', '?')} with chainrule {train.get('chainrule_version', '?')}"
              f" on {data.get('file', '?')} ({data.get('rows', '?')} rows),"
              f" {train.get('epochs_run', '?')} epochs{' (stopped early)' if train.get('stopped_early') else ''}"
              f" in {train.get('seconds', '?')} s")
        settings = train.get("settings", {})
        if settings:
            print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        final = train.get("final", {})
        if final:
            print("final: " + ", ".join(f"{k}={v:.6g}" for k, v in final.items()))
    elif net.history is not None:
        final = {k: v[-1] for k, v in net.history.history.items() if v}
        print(f"\nhistory: {len(net.history.epoch)} epochs; last: "
              + ", ".join(f"{k}={v:.6g}" for k, v in final.items()))
    other = {k: v for k, v in meta.items() if k not in ("preprocessing", "training", "history")}
    if other:
        print("metadata: " + json.dumps(other, default=str)[:500])
    return EXIT_OK


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 error, 2 usage)."""
    parser, handlers = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    commands = {"train": _train, "predict": _predict, "evaluate": _evaluate, "info": _info}
    try:
        if args.command == "demo":
            from .demo import main as demo_main

            demo_main(args.out_dir, verbose=0 if args.quiet else 1)
            return EXIT_OK
        if args.command in handlers:
            code = handlers[args.command](args)
            return code if isinstance(code, int) else EXIT_OK
        return commands[args.command](args)
    except ChainruleError as exc:
        print(f"chainrule: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"chainrule: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())

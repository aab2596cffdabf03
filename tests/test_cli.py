"""The `chainrule` command: train/predict/evaluate/info round trips, bad CSVs, exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main


def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def mixed_csv(tmp_path):
    """Numeric and text inputs, a text target that depends on both, an id column."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(240):
        x1, x2 = rng.normal(size=2)
        color = ["red", "green", "blue"][i % 3]
        label = "cat" if x1 - x2 + (1.5 if color == "red" else -0.5) > 0 else "dog"
        rows.append([f"id{i}", f"{x1:.5f}", color, f"{x2:.5f}", label])
    return write_rows(tmp_path / "pets.csv", ["id", "x1", "color", "x2", "label"], rows)


@pytest.fixture
def regression_csv(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(200):
        a, b = rng.normal(size=2)
        size = ["S", "M", "L"][int(rng.integers(3))]
        price = 1000 + 300 * a - 50 * b + {"S": -100, "M": 0, "L": 150}[size] + rng.normal() * 5
        rows.append([f"{a:.4f}", f"{b:.4f}", size, f"{price:.3f}"])
    return write_rows(tmp_path / "prices.csv", ["a", "b", "size", "price"], rows)


def train(tmp_path, data, target, *extra):
    model = tmp_path / "model.npz"
    code = main(["train", str(data), "--target", target, "--out", str(model), "--epochs", "40", "-q", *extra])
    assert code == 0
    return model


def by_hand(net, data_path):
    """The model's inputs for a CSV built here from the stored encoding, not by chainrule.csvio."""
    rows = read_rows(data_path)
    header, body = rows[0], rows[1:]
    columns = []
    for feature in net.metadata["preprocessing"]["features"]:
        j = header.index(feature["name"])
        if feature["kind"] == "numeric":
            columns.append(np.array([float(r[j]) for r in body])[:, None])
        else:
            cats = feature["categories"]
            columns.append(np.array([[1.0 if r[j] == c else 0.0 for c in cats] for r in body]))
    return np.hstack(columns), header, body


def test_round_trip_cli_predictions_equal_python_api(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--seed", "3")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(mixed_csv), "--out", str(out), "--proba", "--keep", "id"]) == 0
    rows = read_rows(out)
    assert rows[0] == ["id", "label", "proba_cat", "proba_dog"]

    net = cr.load(model)
    X, header, body = by_hand(net, mixed_csv)
    assert X.shape == (240, 5)  # x1, color (3 categories), x2
    logits = net.predict(X)
    classes = net.metadata["preprocessing"]["target"]["classes"]
    assert classes == ["cat", "dog"]
    expected = [classes[k] for k in logits.argmax(axis=1)]
    assert [r[1] for r in rows[1:]] == expected
    assert [r[0] for r in rows[1:]] == [r[0] for r in body]
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(np.array([[float(v) for v in r[2:]] for r in rows[1:]]), p)

    capsys.readouterr()
    assert main(["evaluate", str(model), str(mixed_csv), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    truth = [r[header.index("label")] for r in body]
    assert result["accuracy"] == pytest.approx(np.mean([e == t for e, t in zip(expected, truth, strict=True)]))
    assert result["accuracy"] > 0.9


def test_regression_round_trip_in_target_units(tmp_path, regression_csv, capsys):
    model = train(tmp_path, regression_csv, "price", "--epochs", "60")
    net = cr.load(model)
    target = net.metadata["preprocessing"]["target"]
    assert target["task"] == "regression"
    X, header, body = by_hand(net, regression_csv)
    expected = net.predict(X)[:, 0].astype(np.float64) * target["scale"] + target["mean"]
    capsys.readouterr()
    assert main(["predict", str(model), str(regression_csv)]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0] == ["price"]
    np.testing.assert_array_equal([float(r[0]) for r in rows[1:]], expected)
    assert main(["evaluate", str(model), str(regression_csv), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    truth = np.array([float(r[3]) for r in body])
    assert result["r2"] == pytest.approx(1 - ((expected - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
    assert result["r2"] > 0.95


def test_info_shows_summary_preprocessing_and_training(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--validation-split", "0.25",
                  "--early-stopping", "3", "--hidden", "8")
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    assert "parameters" in text and "Dense(n_in=5, n_out=8" in text
    assert "color (one-hot: blue, green, red)" in text
    assert "classification, 2 classes: cat, dog" in text
    assert "pets.csv (240 rows)" in text and "val_accuracy=" in text
    net = cr.load(model)
    assert net.history is not None and "val_loss" in net.history.history
    assert net.metadata["training"]["epochs_run"] == len(net.history.epoch)
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preprocessing"]["target"]["name"] == "label"


def test_task_inference(tmp_path):
    rng = np.random.default_rng(0)
    ints = write_rows(tmp_path / "ints.csv", ["x", "y"], [[f"{v:.3f}", int(v > 0) + int(v > 1)]
                                                          for v in rng.normal(size=60)])
    floats = write_rows(tmp_path / "floats.csv", ["x", "y"],
                        [[f"{v:.3f}", f"{2 * v:.3f}"] for v in rng.normal(size=60)])
    assert cr.load(train(tmp_path, ints, "y", "--epochs", "2")).metadata["preprocessing"]["target"]["classes"] \
        == ["0", "1", "2"]
    assert cr.load(train(tmp_path, floats, "y", "--epochs", "2")).metadata["preprocessing"]["target"]["task"] \
        == "regression"
    forced = train(tmp_path, ints, "y", "--epochs", "2", "--task", "regression")
    assert cr.load(forced).metadata["preprocessing"]["target"]["task"] == "regression"


def test_no_standardize_and_categorical_numbers(tmp_path, mixed_csv):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--no-standardize", "--categorical", "x2",
                  "--max-categories", "1000", "--epochs", "1")
    net = cr.load(model)
    assert net.scaler is None
    kinds = {f["name"]: f["kind"] for f in net.metadata["preprocessing"]["features"]}
    assert kinds == {"x1": "numeric", "color": "categorical", "x2": "categorical"}


def test_unseen_category_is_all_zeros_with_a_note(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "2")
    rows = read_rows(mixed_csv)
    new = write_rows(tmp_path / "new.csv", rows[0], [rows[1][:2] + ["purple"] + rows[1][3:]])
    capsys.readouterr()
    assert main(["predict", str(model), str(new)]) == 0
    captured = capsys.readouterr()
    assert "1 values of text columns were not seen in training" in captured.err
    net = cr.load(model)
    X, _, _ = by_hand(net, new)
    assert X[0, 1:4].tolist() == [0, 0, 0]
    classes = ["cat", "dog"]
    assert captured.out.splitlines()[1] == classes[int(net.predict(X).argmax())]


def test_streaming_predict_matches_one_chunk(tmp_path, mixed_csv):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "2")
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    assert main(["predict", str(model), str(mixed_csv), "--out", str(one), "--proba"]) == 0
    assert main(["predict", str(model), str(mixed_csv), "--out", str(many), "--proba", "--chunk-size", "7"]) == 0
    a, b = read_rows(one), read_rows(many)
    assert len(a) == 241 and [r[0] for r in a] == [r[0] for r in b]
    # the same numbers up to float32 rounding (BLAS may sum in another order for other batch sizes)
    np.testing.assert_allclose(np.array(a[1:])[:, 1:].astype(float), np.array(b[1:])[:, 1:].astype(float),
                               rtol=1e-5, atol=1e-6)


BAD_CSVS = {
    # name: (file content, expected message fragments)
    "ragged-long": ("x,color,label\n1,red,a\n2,blue,b,9\n", ["line 3", "column 4", "4 fields, the header has 3"]),
    "ragged-short": ("x,color,label\n1,red,a\n2,blue\n", ["line 3", "column 3", "2 fields, the header has 3"]),
    "non-numeric": ("x,color,label\n" + "".join(f"{i},red,{'ab'[i % 2]}\n" for i in range(8)) + "x7,blue,a\n",
                    ["line 10", "column 1 ('x')", "expected a number, got 'x7'"]),
    "missing-target": ("x,color,lbl\n1,red,a\n2,blue,b\n", ["line 1", "column 'label'", "no such target column"]),
    "empty": ("", ["line 1", "the file is empty"]),
    "header-only": ("x,color,label\n", ["line 2", "no data rows"]),
}


@pytest.mark.parametrize("kind", sorted(BAD_CSVS))
def test_bad_csv_to_train_is_one_line_exit_1_nothing_written(tmp_path, capsys, kind):
    content, fragments = BAD_CSVS[kind]
    data = tmp_path / "bad.csv"
    data.write_text(content)
    out = tmp_path / "model.npz"
    assert main(["train", str(data), "--target", "label", "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chainrule: error: ")
    assert str(data) in err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [data]


@pytest.mark.parametrize("kind", ["ragged-long", "ragged-short", "non-numeric", "empty", "header-only"])
def test_bad_csv_to_predict_and_evaluate(tmp_path, mixed_csv, capsys, kind):
    model = train(tmp_path, write_rows(tmp_path / "ok.csv", ["x", "color", "label"],
                                       [[i, "red" if i % 3 else "blue", "ab"[i % 2]] for i in range(12)]),
                  "label", "--epochs", "1")
    content, fragments = BAD_CSVS[kind]
    data = tmp_path / "bad.csv"
    data.write_text(content)
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", str(model), str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(data) in err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists()
    assert main(["evaluate", str(model), str(data)]) == 1
    assert str(data) in capsys.readouterr().err


def test_bad_row_deep_in_a_streamed_file_leaves_no_output(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "1")
    rows = read_rows(mixed_csv)
    rows[200][1] = "oops"
    data = write_rows(tmp_path / "late.csv", rows[0], rows[1:])
    out = tmp_path / "pred.csv"
    out.write_text("previous\n")
    assert main(["predict", str(model), str(data), "--out", str(out), "--chunk-size", "16"]) == 1
    assert "line 201, column 2 ('x1'): expected a number, got 'oops'" in capsys.readouterr().err
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.npz", "pets.csv", "late.csv", "pred.csv"])


def test_predict_needs_the_models_input_columns(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "1")
    data = write_rows(tmp_path / "partial.csv", ["x1", "x2"], [["1", "2"]])
    assert main(["predict", str(model), str(data)]) == 1
    assert "line 1, column 'color': the model needs this input column" in capsys.readouterr().err


def test_errors_about_the_model(tmp_path, regression_csv, capsys):
    assert main(["info", str(tmp_path / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["predict", str(regression_csv), str(regression_csv)]) == 1
    assert "not a chainrule model file" in capsys.readouterr().err
    model = train(tmp_path, regression_csv, "price", "--epochs", "1")
    assert main(["predict", str(model), str(regression_csv), "--proba"]) == 1
    assert "--proba needs a classification model" in capsys.readouterr().err
    assert main(["train", str(regression_csv), "--target", "price", "--loss", "crossentropy", "-q"]) == 1


@pytest.mark.parametrize("argv", [
    [], ["nosuch"], ["train", "x.csv"], ["train", "x.csv", "--target", "y", "--hidden", "a,b"],
    ["train", "x.csv", "--target", "y", "--validation-split", "1.5"], ["train", "x.csv", "--target", "y",
                                                                         "--epochs", "0"],
    ["predict", "m.npz"], ["train", "x.csv", "--target", "y", "--activation", "swish"],
])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "info", "demo"])
def test_help_on_every_subcommand(command, capsys):
    assert main([command, "--help"]) == 0
    assert f"chainrule {command}" in capsys.readouterr().out


def test_train_writes_plot_and_log(tmp_path, mixed_csv):
    pytest.importorskip("matplotlib")
    plot, log = tmp_path / "curves.png", tmp_path / "log.csv"
    train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "3", "--validation-split", "0.2",
          "--plot", str(plot), "--log", str(log))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_rows(log)
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"] and len(rows) == 4


def test_python_dash_m_and_plain_lines_when_not_a_tty(tmp_path, mixed_csv):
    out = tmp_path / "m.npz"
    proc = subprocess.run([sys.executable, "-m", "chainrule", "train", str(mixed_csv), "--target", "label",
                           "--ignore", "id", "--epochs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/2: loss=" in proc.stdout and "epoch 2/2: loss=" in proc.stdout
    assert out.exists()
    proc = subprocess.run([sys.executable, "-m", "chainrule", "info", str(tmp_path / "none.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1


def test_explain_hook_is_wired_when_present():
    import importlib.util

    from chainrule.cli import build_parser

    _, handlers = build_parser()
    present = importlib.util.find_spec("chainrule.explain.cli") is not None
    assert ("explain" in handlers) == present


def test_evaluate_needs_the_target_column(tmp_path, mixed_csv, capsys):
    model = train(tmp_path, mixed_csv, "label", "--ignore", "id", "--epochs", "1")
    rows = read_rows(mixed_csv)
    data = write_rows(tmp_path / "unlabelled.csv", rows[0][:-1], [r[:-1] for r in rows[1:]])
    assert main(["evaluate", str(model), str(data)]) == 1
    err = capsys.readouterr().err
    assert "unlabelled.csv, line 1, column 'label': the header has no such target column" in err
    assert main(["evaluate", str(model), str(mixed_csv), "--target", "color"]) == 1
    assert "class 'red' was not seen in training" in capsys.readouterr().err

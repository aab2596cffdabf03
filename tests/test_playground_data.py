"""The playground's settings, data sets, features, CSV upload and names (no server)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.csvio import CsvError, read_table
from chainrule.playground.config import DEFAULTS, check_config
from chainrule.playground.datasets import features, generate, grid
from chainrule.playground.upload import MAX_UPLOAD, read_upload
from chainrule.playground.walk import bias_names, unit_names, weight_names


# --- settings --------------------------------------------------------------------------------
def test_defaults_pass_the_check_unchanged():
    assert check_config({}) == DEFAULTS


@pytest.mark.parametrize("update, field", [
    ({"layers": [4, 9]}, "layers"),
    ({"layers": [1] * 7}, "layers"),
    ({"features": []}, "features"),
    ({"features": ["x", "z"]}, "features"),
    ({"activations": ["tanh", "cube"]}, "activations"),
    ({"lr": 0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"noise": 60}, "noise"),
    ({"dataset": "moons"}, "dataset"),
    ({"classes": 4}, "classes"),
    ({"batch_size": True}, "batch_size"),
    ({"dataset": "xor", "classes": 3}, "classes"),
    ({"dataset": "plane", "loss": "crossentropy"}, "loss"),
])
def test_a_bad_setting_is_a_config_error_naming_the_field(update, field):
    with pytest.raises(cr.ConfigError, match=f"'{field}'"):
        check_config(update)


def test_unknown_fields_are_named():
    with pytest.raises(cr.ConfigError, match="'colour'"):
        check_config({"colour": "red"})


def test_changing_the_layers_keeps_or_extends_the_activations():
    cfg = check_config({"layers": [3, 3, 3], "activations": ["relu", "tanh", "sigmoid"]})
    assert check_config({"layers": [3, 3]}, cfg)["activations"] == ["relu", "tanh"]
    assert check_config({"layers": [3, 3, 3, 3]}, cfg)["activations"] == ["relu", "tanh", "sigmoid", "sigmoid"]
    assert check_config({"layers": []}, cfg)["activations"] == []


def test_features_are_put_in_a_fixed_order():
    assert check_config({"features": ["sinx", "x", "xy"]})["features"] == ["x", "xy", "sinx"]


# --- data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, classes", [("circle", 2), ("circle", 3), ("xor", 2), ("gaussian", 2),
                                           ("gaussian", 3), ("spiral", 2), ("spiral", 3), ("plane", 2),
                                           ("multigauss", 2)])
def test_data_sets_are_seeded_and_in_the_square(name, classes):
    a = generate(name, 300, 0.1, classes, np.random.default_rng(5))
    b = generate(name, 300, 0.1, classes, np.random.default_rng(5))
    c = generate(name, 300, 0.1, classes, np.random.default_rng(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    points, target = a
    assert points.shape == (300, 2) and target.shape == (300,)
    assert np.abs(points).max() < 9
    if name in ("plane", "multigauss"):
        assert target.dtype.kind == "f" and np.abs(target).max() < 2
    else:
        assert sorted(set(target.tolist())) == list(range(classes))


def test_circle_without_noise_puts_class_1_inside():
    points, target = generate("circle", 400, 0.0, 2, np.random.default_rng(0))
    radius = np.hypot(points[:, 0], points[:, 1])
    assert radius[target == 1].max() <= 2.5 and radius[target == 0].min() >= 3.5


def test_xor_labels_follow_the_sign_of_the_product():
    points, target = generate("xor", 400, 0.0, 2, np.random.default_rng(0))
    assert np.array_equal(target, (points[:, 0] * points[:, 1] > 0).astype(int))


def test_features_are_the_named_functions_of_the_point():
    p = np.array([[1.5, -2.0], [0.0, 3.0]])
    f = features(p, ["x", "y", "x2", "y2", "xy", "sinx", "siny"])
    expected = np.array([[1.5, -2.0, 2.25, 4.0, -3.0, np.sin(1.5), np.sin(-2.0)],
                         [0.0, 3.0, 0.0, 9.0, 0.0, 0.0, np.sin(3.0)]])
    assert np.array_equal(f, expected)


def test_grid_runs_row_by_row_from_the_top_left():
    g = grid(3)
    assert g.tolist() == [[-6, 6], [0, 6], [6, 6], [-6, 0], [0, 0], [6, 0], [-6, -6], [0, -6], [6, -6]]


# --- CSV upload -----------------------------------------------------------------------------------
def test_upload_of_three_classes():
    body = b"a,b,kind\n" + b"".join(f"{i},{i * i % 7},{'xyz'[i % 3]}\n".encode() for i in range(30))
    up = read_upload(body, "points.csv")
    assert up.task == "classification" and up.classes == ["x", "y", "z"]
    assert up.columns == ["a", "b"] and up.label == "kind"
    assert up.points.min() == -6 and up.points.max() == 6
    assert np.array_equal(up.target, np.arange(30) % 3)
    assert up.ranges[0] == (0.0, 29.0)


def test_upload_of_a_regression_and_a_chosen_label_column():
    body = b"y,x,value\n" + b"".join(f"{i},{-i},{i * 0.37}\n".encode() for i in range(40))
    up = read_upload(body, "r.csv", label="value")
    assert up.task == "regression"
    assert abs(up.target.mean()) < 1e-12 and abs(up.target.std() - 1) < 1e-12


def test_upload_errors_read_like_the_command_lines(tmp_path):
    body = b"x,y,label\n1,2,a\n3,abc,b\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(body)
    from chainrule.csvio import TablePreprocessor

    with pytest.raises(CsvError) as cli_error:
        TablePreprocessor(target="label").fit(read_table(path))
    with pytest.raises(CsvError) as upload_error:
        read_upload(body, "bad.csv")
    assert str(upload_error.value) == str(cli_error.value).replace(str(path), "bad.csv")
    assert str(upload_error.value) == "bad.csv, line 3, column 2 ('y'): expected a number, got 'abc'"


@pytest.mark.parametrize("body, message", [
    (b"", "the file is empty"),
    (b"x,y\n1,2\n", "expected three columns"),
    (b"x,y,a,b\n1,2,3,4\n", "expected three columns"),
    (b"x,y,label\n1,2\n", "this row has 2 fields"),
    (b"x,y,label\n" + b"".join(f"{i},{i},c{i % 4}\n".encode() for i in range(20)), "4 classes"),
    (b"x,y,label\n" + b"".join(f"{i},{'uvw'[i % 3]},{i % 2}\n".encode() for i in range(20)), "feature column"),
])
def test_upload_errors(body, message):
    with pytest.raises(CsvError, match=message) as err:
        read_upload(body, "../../etc/pts.csv")
    assert str(err.value).startswith("pts.csv")


def test_upload_size_limit():
    with pytest.raises(CsvError, match="at most"):
        read_upload(b"x" * (MAX_UPLOAD + 1), "big.csv")


# --- names: the same as explain's --------------------------------------------------------------------
def test_names_follow_the_explain_scalar_notation():
    assert unit_names(2, [2, 2]) == [["i1", "i2"], ["h1", "h2"], ["o1", "o2"]]
    assert weight_names(2, [2, 2]) == [[["w1", "w3"], ["w2", "w4"]], [["w5", "w7"], ["w6", "w8"]]]
    assert bias_names(2, [2, 2]) == [["b1_h1", "b1_h2"], ["b2_o1", "b2_o2"]]
    assert unit_names(1, [2, 3, 1])[1:] == [["h1_1", "h1_2"], ["h2_1", "h2_2", "h2_3"], ["o1"]]


def test_names_agree_with_an_explain_trace():
    rng = np.random.default_rng(0)
    net = cr.Sequential(cr.Dense(3, 2, seed=rng), cr.Tanh(), cr.Dense(2, 3, seed=rng), cr.Tanh(),
                        cr.Dense(3, 2, seed=rng), dtype=np.float64)
    trace = cr.explain(net, "sse", rng.normal(size=3), rng.normal(size=2))
    names = weight_names(3, [2, 3, 2])
    dense = [0, 2, 4]
    for step in trace.checks:
        layer, kind, index = step.key
        if kind == "weight":
            assert names[dense.index(layer)][index[0]][index[1]] == step.param
    assert [[n["name"] for n in col] for col in trace.graph["layers"]] == unit_names(3, [2, 3, 2])

"""The playground's session: its steps are the library's steps, its numbers the library's numbers.

Each reference here is built by the test from the documented rules (seeds, layer order,
batch order), not by the playground's own code.
"""

import time

import numpy as np
import pytest

import chainrule as cr
from chainrule.playground.frames import decode_f64
from chainrule.playground.session import Session

ACTS = {"tanh": cr.Tanh, "relu": cr.ReLU, "sigmoid": cr.Sigmoid, "linear": cr.Identity}


@pytest.fixture
def make_session():
    sessions = []

    def make(**config):
        s = Session(config)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()


def reference(seed, n_in, layers, acts, n_out, sigmoid):
    """The documented network: Dense layers drawing from the second generator of SeedSequence(seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1])
    parts, n = [], n_in
    for size, act in zip(layers, acts, strict=True):
        parts += [cr.Dense(n, size, seed=rng), ACTS[act]()]
        n = size
    parts.append(cr.Dense(n, n_out, seed=rng))
    if sigmoid:
        parts.append(cr.Sigmoid())
    return cr.Sequential(*parts, dtype=np.float64)


def library_step(net, loss, optimizer, xb, tb):
    out = net.forward(xb, training=True)
    value, grad = loss.value_and_grad(out, tb)
    net.backward(grad)
    grads = [layer.grads["weight"].copy() for layer in net.layers if isinstance(layer, cr.Dense)]
    optimizer.step(net)
    return value, grads


def weights(frame):
    return [np.array(w) for w in frame["weights"]]


CASES = [
    (dict(seed=3), (2, [4, 2], ["tanh", "tanh"], 1, True), cr.SSE(), lambda: cr.SGD(lr=0.03)),
    (dict(seed=4, optimizer="momentum", lr=0.1, dataset="spiral", classes=3, loss="crossentropy",
          features=["x", "y", "xy"], layers=[5], activations=["relu"], batch_size=7),
     (3, [5], ["relu"], 3, False), cr.CrossEntropy(), lambda: cr.SGD(lr=0.1, momentum=0.9)),
    (dict(seed=5, optimizer="adam", lr=0.01, dataset="gaussian", classes=3, layers=[3, 3, 2],
          activations=["sigmoid", "linear", "tanh"]),
     (2, [3, 3, 2], ["sigmoid", "linear", "tanh"], 3, True), cr.SSE(), lambda: cr.Adam(lr=0.01)),
    (dict(seed=6, dataset="plane", layers=[], activations=[], batch_size=1),
     (2, [], [], 1, False), cr.SSE(), lambda: cr.SGD(lr=0.03)),
]


@pytest.mark.parametrize("config, shape, loss, optimizer", CASES)
def test_steps_are_bit_identical_to_the_librarys(make_session, config, shape, loss, optimizer):
    s = make_session(**config)
    ref, opt = reference(config["seed"], *shape), optimizer()
    first = s.frame()
    dense = [layer for layer in ref.layers if isinstance(layer, cr.Dense)]
    assert all(np.array_equal(a, d.params["weight"]) for a, d in zip(weights(first), dense, strict=True))
    batch_rng = np.random.default_rng(np.random.SeedSequence(config["seed"]).spawn(3)[2])
    n_train = len(s.inputs["train"])
    order = batch_rng.permutation(n_train)
    bs = config.get("batch_size", 10)
    X, T = s.inputs["train"], s.targets["train"]
    for k in range(3):
        frame = s.step()
        assert frame["step"] == k + 1
        assert frame["batch"] == order[k * bs:(k + 1) * bs].tolist()
        idx = np.array(frame["batch"])
        value, grads = library_step(ref, loss, opt, X[idx], T[idx])
        for d, w, b in zip(dense, frame["weights"], frame["biases"], strict=True):
            assert np.array_equal(np.array(w), d.params["weight"])
            assert np.array_equal(np.array(b), d.params["bias"])
        for g, fg in zip(grads, frame["grads"], strict=True):
            assert np.array_equal(g, np.array(fg))
        assert frame["loss"]["batch"] == value


def test_frame_gradient_is_backward_and_agrees_with_gradcheck(make_session):
    s = make_session(seed=2, layers=[3, 2], activations=["tanh", "sigmoid"])
    before = s.net.copy()
    frame = s.step()
    idx = np.array(frame["batch"])
    xb, tb = s.inputs["train"][idx], s.targets["train"][idx]
    report = cr.gradcheck(before, cr.SSE(), xb, tb)
    assert report.ok
    for level, position in enumerate([0, 2, 4]):
        shown = np.array(frame["grads"][level])
        assert np.array_equal(shown, report[f"{position}.weight"].analytic)
        numeric = report[f"{position}.weight"].numeric
        assert np.all(np.abs(shown - numeric) <= 1e-7 * np.maximum(np.abs(shown), 1e-5))
        assert np.allclose(np.array(frame["bias_grads"][level]), report[f"{position}.bias"].numeric, atol=1e-10)


def test_unit_values_are_batch_means_and_deltas_are_bias_gradients(make_session):
    s = make_session(seed=2)
    before = s.net.copy()
    frame = s.step()
    xb = s.inputs["train"][np.array(frame["batch"])]
    h1 = np.tanh(xb @ before.layers[0].params["weight"] + before.layers[0].params["bias"])
    assert np.allclose(frame["units"]["act"][1], h1.mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(frame["units"]["act"][0], xb.mean(axis=0), rtol=0, atol=1e-12)
    for level in range(3):
        assert frame["units"]["delta"][level + 1] == frame["bias_grads"][level]


def test_output_heat_map_is_predict_on_the_grid(make_session):
    s = make_session(seed=9, features=["x", "y", "x2", "sinx"], dataset="spiral", classes=3,
                     loss="crossentropy")
    for _ in range(5):
        s.step()
    frame = s.frame()
    h = frame["heatmap"]
    size = h["size"]
    xs, ys = np.linspace(-6, 6, size), np.linspace(6, -6, size)
    points = np.array([[x, y] for y in ys for x in xs])
    inputs = np.column_stack([points[:, 0], points[:, 1], points[:, 0] ** 2, np.sin(points[:, 0])])
    ref = reference(9, 4, [4, 2], ["tanh", "tanh"], 3, False)
    ref.set_weights([np.array(a) for pair in zip(frame["weights"], frame["biases"], strict=True) for a in pair])
    assert h["outputs"] == 3 and h["extent"] == [-6, 6, -6, 6]
    assert np.array_equal(decode_f64(h["data"], (size * size, 3)), ref.predict(inputs))


def test_unit_maps_cover_inputs_and_hidden_units(make_session):
    s = make_session(layers=[3, 2], activations=["relu", "tanh"], features=["x", "y", "xy"])
    maps = s.frame()["unit_maps"]
    assert len(maps["maps"]) == 3 + 3 + 2
    xy = maps["maps"][2]
    assert xy["lo"] == -36 and xy["hi"] == 36
    relu = maps["maps"][3]
    assert relu["lo"] >= 0


def test_regularization_adds_its_gradient_before_the_update(make_session):
    s = make_session(seed=1, regularization="l2", reg_rate=0.1, layers=[3], activations=["tanh"])
    t = make_session(seed=1, regularization="l1", reg_rate=0.1, layers=[3], activations=["tanh"])
    for session, penalty in ((s, lambda w: 0.1 * w), (t, lambda w: 0.1 * np.sign(w))):
        before = [np.array(w) for w in session.frame()["weights"]]
        frame = session.step()
        for w0, w1, g in zip(before, frame["weights"], frame["grads"], strict=True):
            assert np.allclose(np.array(w1), w0 - 0.03 * (np.array(g) + penalty(w0)), rtol=0, atol=1e-15)


def test_live_settings_keep_the_network_and_others_rebuild(make_session):
    s = make_session(seed=1)
    s.step()
    s.step()
    generation = s.generation
    state = s.configure({"lr": 0.1, "batch_size": 30, "optimizer": "momentum"})
    assert state["generation"] == generation and state["frame"]["step"] == 2
    assert s.optimizer.lr == 0.1 and s.optimizer.momentum == 0.9
    assert len(s.step()["batch"]) == 30
    state = s.configure({"layers": [2]})
    assert state["generation"] == generation + 1 and state["frame"]["step"] == 0
    assert state["topology"]["sizes"] == [2, 2, 1]


def test_reset_returns_to_the_seeds_weights(make_session):
    s = make_session(seed=8)
    start = s.frame()["weights"]
    for _ in range(4):
        s.step()
    assert s.frame()["weights"] != start
    assert s.reset()["frame"]["weights"] == start


def test_a_diverging_loss_stops_training_with_a_message(make_session):
    s = make_session(dataset="plane", lr=10.0, layers=[8, 8], activations=["relu", "relu"], features=["x2", "y2"],
                     batch_size=1)
    for _ in range(200):
        frame = s.step()
        if frame["error"]:
            break
    assert "the loss became" in frame["error"] and "Lower the learning rate" in frame["error"]
    assert all(np.isfinite(np.array(w)).all() for w in frame["weights"])
    step = frame["step"]
    assert s.step()["step"] == step
    s.play()
    assert not s.playing


def test_play_takes_steps_in_the_background_and_pause_stops_them(make_session):
    s = make_session()
    s.play()
    deadline = time.monotonic() + 5
    while s.steps < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    frame = s.pause()
    assert frame["step"] >= 20 and not frame["playing"]
    time.sleep(0.05)
    assert s.steps == frame["step"]
    s.close()
    assert not s._thread.is_alive()


def test_speed_limits_the_steps_per_second(make_session):
    s = make_session(speed=20)
    s.play()
    time.sleep(0.5)
    s.pause()
    assert 3 <= s.steps <= 15


def test_backprop_walk_shows_explains_factors(make_session):
    s = make_session(seed=4, layers=[3, 2], activations=["tanh", "relu"])
    for _ in range(10):
        s.step()
    net = s.net.copy()
    walk = s.backprop("train", 5)
    x, y = s.inputs["train"][5:6], s.targets["train"][5:6]
    trace = cr.explain(net, cr.SSE(), x, y)
    topology = s.topology()
    assert len(walk["edges"]) == 2 * 3 + 3 * 2 + 2 * 1
    for key, edge in walk["edges"].items():
        level, i, j = map(int, key.split(","))
        assert edge["name"] == topology["names"]["weights"][level][i][j]
        step = trace.find(f"dE/d{edge['name']}", section="backward")
        assert [f["value"] for f in edge["factors"]] == step.rhs[1].numbers()
        assert edge["value"] == step.value == trace.value(f"dE/d{edge['name']}", section="check")
        assert abs(np.prod([f["value"] for f in edge["factors"]]) - edge["value"]) <= 1e-15
        assert edge["rel_error"] < 1e-7
    # independently: the output weights' factors are (o - t), o(1 - o) and the hidden activation
    h = net.layers[3].forward(net.layers[2].forward(net.layers[1].forward(net.layers[0].forward(x))))
    o = net.forward(x)[0, 0]
    for i in range(2):
        factors = [f["value"] for f in walk["edges"][f"2,{i},0"]["factors"]]
        assert np.allclose(factors, [o - y[0, 0], o * (1 - o), h[0, i]], rtol=1e-14, atol=0)
    phases = [st["phase"] for st in walk["steps"]]
    assert phases.index("forward") < phases.index("error") < phases.index("backward")
    assert walk["sample"]["inputs"] == x[0].tolist() and walk["error"] == trace.errors[0]
    assert walk["units"]["3,0"]["out"] == o


def test_backprop_pauses_and_rejects_bad_samples(make_session):
    s = make_session()
    s.play()
    s.backprop("test", 0)
    assert not s.playing
    with pytest.raises(cr.ConfigError, match="index must be"):
        s.backprop("train", 10**6)
    with pytest.raises(cr.ConfigError, match="split"):
        s.backprop("validation", 0)


def test_trace_export_is_explains_markdown_and_html(make_session):
    s = make_session(seed=2)
    s.step()
    md = s.trace("train", 1, "markdown")
    x, y = s.inputs["train"][1:2], s.targets["train"][1:2]
    assert md == cr.explain(s.net.copy(), cr.SSE(), x, y, lr=0.03).to_markdown()
    html = s.trace("train", 1, "html")
    assert html.lstrip().lower().startswith("<!doctype html") and "<svg" in html


def test_model_export_loads_with_cr_load(make_session, tmp_path):
    s = make_session(seed=3, features=["x", "y", "xy"], loss="crossentropy", dataset="spiral", classes=3)
    for _ in range(3):
        s.step()
    path = tmp_path / "m.npz"
    path.write_bytes(s.model_bytes())
    net = cr.load(path)
    X = s.inputs["test"]
    assert np.array_equal(net.predict(X), s.net.predict(X))
    meta = net.metadata["playground"]
    assert meta["config"]["features"] == ["x", "y", "xy"] and meta["step"] == 3 and meta["classes"] == 3


def test_uploaded_csv_becomes_the_data(make_session):
    s = make_session(loss="crossentropy")
    body = b"u,v,label\n" + b"".join(f"{i % 10},{i // 10},{'ab'[i % 2]}\n".encode() for i in range(60))
    state = s.upload_csv(body, "grid.csv")
    assert state["config"]["dataset"] == "csv" and state["config"]["classes"] == 2
    assert state["upload"]["filename"] == "grid.csv"
    assert len(state["data"]["train"]) + len(state["data"]["test"]) == 60
    assert state["topology"]["class_names"] == ["a", "b"]
    s.step()
    regression = b"u,v,t\n" + b"".join(f"{i},{i % 7},{i * 0.5}\n".encode() for i in range(30))
    state = s.upload_csv(regression, "r.csv")
    assert state["config"]["loss"] == "squared" and state["topology"]["task"] == "regression"


def test_a_rejected_setting_leaves_the_session_as_it_was(make_session):
    s = make_session()
    other = make_session()
    s.step()
    with pytest.raises(cr.ConfigError, match="uploaded CSV"):
        s.configure({"dataset": "csv"})
    assert s.config["dataset"] == "circle"
    other.step()
    assert s.step()["batch"] == other.step()["batch"]


def test_the_docs_reproduction_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "playground.md").read_text(encoding="utf-8")
    example = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "session.step()" in b]
    assert len(example) == 1
    exec(compile(example[0], "docs/playground.md", "exec"), {})


def test_loss_history_counts_epochs_for_the_charts_x_axis(make_session):
    # 100 points, half for training: 50 per epoch; batches of 20 take 20, 20, then the last 10
    s = make_session(samples=100, train_ratio=50, batch_size=20)
    for _ in range(5):
        s.step()
        s.frame()
    epochs = {step: point[3] for step, *_, point in [(p[0], p) for p in s.history]}
    assert epochs == {0: 0.0, 1: 0.4, 2: 0.8, 3: 1.0, 4: 1.4, 5: 1.8}

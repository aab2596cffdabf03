"""What a new user meets on the first day: each surprise, pinned down as the behaviour now is."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain.examples import example


@pytest.mark.parametrize("name", ["mazur", "xor", "test-score", "single-neuron"])
@pytest.mark.parametrize("notation", ["scalar", "matrix"])
def test_explain_where_paths_evaluate_on_the_network(name, notation):
    ex = example(name)
    trace = cr.explain(ex.net, ex.loss, ex.x, ex.y, notation=notation)
    listed = [s for s in trace.steps if s.where and s.section == "network"]
    assert listed, "the trace lists no parameter"
    for step in (s for s in trace.steps if s.where):
        expr = step.where.split(" = ", 1)[1]
        eval("net." + expr, {}, {"net": ex.net})  # every printed path is one a user can paste
    for step in listed:  # and it names the parameter whose value the trace shows
        expr = step.where.split(" = ", 1)[1]
        assert float(eval("net." + expr, {}, {"net": ex.net})) == pytest.approx(float(step.value), rel=1e-12)


@pytest.mark.parametrize("scaler", [cr.Standardizer(), cr.MinMaxScaler(feature_range=(-1, 2)), cr.MaxScaler()])
def test_call_and_predict_agree_when_a_scaler_is_attached(scaler):
    X, y = cr.datasets.load_digits()
    net = cr.mlp([64, 16, 10], seed=0)
    net.scaler = scaler
    net.fit(X[:200], y[:200], loss="crossentropy", epochs=1, verbose=0, seed=0)
    assert np.array_equal(net(X[200:300]), net.predict(X[200:300]))
    assert np.array_equal(net.forward(X[200:300]), net.predict(X[200:300]))


@pytest.mark.parametrize("scaler", [cr.Standardizer(), cr.MinMaxScaler(feature_range=(-1, 2)), cr.MaxScaler()])
def test_backward_gives_the_gradient_for_the_raw_input(scaler):
    # dL/dx of L = Σ w·net(x) for the raw x, against central differences (float64)
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(5, 4))
    net = cr.Sequential(cr.Dense(4, 3, seed=0), cr.Tanh(), cr.Dense(3, 2, seed=1), dtype=np.float64)
    net.scaler = scaler.fit(X)
    w = rng.normal(size=(5, 2))
    net(X)
    analytic = net.backward(w)
    numeric = np.zeros_like(X)
    h = 1e-6
    for idx in np.ndindex(*X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        numeric[idx] = (np.sum(w * net(Xp)) - np.sum(w * net(Xm))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_bce_on_an_unbounded_output_is_refused_with_the_fix_named():
    X, y = cr.datasets.xor()
    net = cr.mlp([2, 2, 1], activation="sigmoid", seed=0)  # no output activation: logits
    with pytest.raises(cr.errors.ConfigError, match=r"from_logits=True.*Sigmoid"):
        net.fit(X, y, loss="bce", epochs=1, verbose=0)
    assert net.fit(X, y, loss=cr.BinaryCrossEntropy(from_logits=True), epochs=1, verbose=0)
    ok = cr.mlp([2, 2, 1], activation="sigmoid", output_activation="sigmoid", seed=0)
    assert ok.fit(X, y, loss="bce", epochs=1, verbose=0)


def test_bce_from_logits_after_a_sigmoid_is_refused():
    X, y = cr.datasets.xor()
    net = cr.mlp([2, 2, 1], activation="tanh", output_activation="sigmoid", seed=0)
    with pytest.raises(cr.errors.ConfigError, match="already probabilities"):
        net.fit(X, y, loss=cr.BinaryCrossEntropy(from_logits=True), epochs=1, verbose=0)


def test_crossentropy_after_a_softmax_layer_is_refused():
    X, y = cr.datasets.load_digits()
    net = cr.mlp([64, 16, 10], output_activation="softmax", seed=0)
    with pytest.raises(cr.errors.ConfigError, match="softmax itself"):
        net.fit(X[:50], y[:50], loss="crossentropy", epochs=1, verbose=0)


def test_bce_value_refuses_outputs_outside_0_1_instead_of_clipping():
    with pytest.raises(cr.errors.DataError, match=r"\[0, 1\]"):
        cr.BinaryCrossEntropy().value(np.array([[-1.2e6], [0.5]]), np.array([[0.0], [1.0]]))
    # probabilities at the ends are fine
    assert np.isfinite(cr.BinaryCrossEntropy().value(np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]])))


def test_mse_on_class_labels_names_the_fix():
    X, y = cr.datasets.load_digits()
    net = cr.mlp([64, 16, 10], seed=0)
    with pytest.raises(cr.errors.ShapeError, match="look like class labels.*crossentropy"):
        net.fit(X[:50], y[:50], loss="mse", epochs=1, verbose=0)


def _xor_net():
    return cr.mlp([2, 2, 1], activation="sigmoid", output_activation="sigmoid", seed=0)


def test_print_every_prints_one_line_every_n_epochs_and_nothing_else(capsys):
    X, y = cr.datasets.xor()
    _xor_net().fit(X, y, loss="mse", epochs=1000, print_every=250)
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"epoch={e}, loss={line.split('loss=')[1]}"
                                for e, line in zip((250, 500, 750, 1000), out.splitlines(), strict=True)]
    assert err == ""


def test_in_a_notebook_fit_shows_one_bar_for_the_run(monkeypatch, capsys):
    import chainrule.training as training

    monkeypatch.setattr(training, "in_notebook", lambda: True)
    X, y = cr.datasets.xor()
    _xor_net().fit(X, y, loss="mse", epochs=40, verbose=1)
    out, err = capsys.readouterr()
    assert out == ""  # no line per epoch
    assert "epoch 1/40" not in err and err.count("\n") <= 1  # one bar, updated in place
    assert "40/40" in err


def test_in_a_notebook_plot_history_returns_a_figure_pyplot_does_not_hold(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import chainrule.plot as plot

    monkeypatch.setattr(plot, "in_notebook", lambda: True)
    plt.close("all")
    fig = plot.history({"loss": [1.0, 0.5, 0.25]})
    assert fig is not None and plt.get_fignums() == []  # shown once: as the cell's value only


@pytest.mark.parametrize("callbacks", [[None], "x", 3, [cr.EarlyStopping(), "x"], cr.EarlyStopping()])
def test_fit_refuses_callbacks_that_are_not_a_list_of_callbacks(callbacks):
    X, y = cr.datasets.xor()
    with pytest.raises(cr.errors.ConfigError, match="callbacks"):
        _xor_net().fit(X, y, loss="mse", epochs=1, verbose=0, callbacks=callbacks)


def test_fit_takes_callbacks_none_as_no_callbacks():
    X, y = cr.datasets.xor()
    assert _xor_net().fit(X, y, loss="mse", epochs=1, verbose=0, callbacks=None).history["loss"]

"""cr.plot: history curves, decision boundaries, gradient norms (Agg backend, no display)."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import chainrule as cr  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer")


@pytest.fixture(scope="module")
def trained():
    X, y = cr.datasets.moons(200, noise=0.15, seed=0)
    net = cr.mlp([2, 16, 2], activation="tanh", seed=0)
    norms = cr.GradientNormLogger()
    history = net.fit(X[:150], y[:150], loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.02), epochs=15,
                      batch_size=32, seed=0, validation_data=(X[150:], y[150:]), metrics=["accuracy"],
                      callbacks=[norms], verbose=0)
    return net, history, norms, X, y


def test_history_panels_and_curves(trained, tmp_path):
    _, history, _, _, _ = trained
    fig = cr.plot.history(history, path=tmp_path / "h.png", title="moons")
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val loss"]
    assert [line.get_label() for line in acc_ax.lines] == ["accuracy", "val accuracy"]
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), history.history["val_loss"])
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), np.arange(1, 16))
    assert fig._suptitle.get_text() == "moons"


def test_history_from_a_dict_an_estimator_and_onto_given_axes(tmp_path):
    import matplotlib.pyplot as plt

    fig = cr.plot.history({"loss": [3, 2, 1]}, path=tmp_path / "d.svg", log_loss=True)
    assert (tmp_path / "d.svg").read_text().lstrip().startswith("<?xml")
    assert fig.axes[0].get_yscale() == "log"
    fig, ax = plt.subplots()
    assert cr.plot.history({"loss": [1.0, 0.5]}, ax=ax) is fig
    plt.close(fig)
    pytest.importorskip("sklearn")
    from chainrule.sklearn import MLPClassifier

    X, y = cr.datasets.moons(100, seed=1)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True, random_state=0).fit(X, y)
    fig = cr.plot.history(est, path=tmp_path / "est.png")
    assert [line.get_label() for line in fig.axes[0].lines] == ["loss"]
    assert [line.get_label() for line in fig.axes[1].lines] == ["val accuracy"]
    with pytest.raises(cr.ShapeError, match="empty"):
        cr.plot.history({})


def test_decision_boundary_regions_follow_the_network(trained, tmp_path):
    net, _, _, X, y = trained
    fig = cr.plot.decision_boundary(net, X, y, path=tmp_path / "b.png", resolution=50)
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((X[:, 0].min() - 0.5, X[:, 0].max() + 0.5))
    # the filled regions are the network's arg-max on the grid
    from chainrule.plot import _class_of

    grid = np.array([[X[:, 0].min(), X[:, 1].min()], [0.0, 0.0]])
    assert _class_of(net, grid, 0.5).tolist() == net.predict(grid).argmax(axis=1).tolist()
    with pytest.raises(cr.ShapeError, match="2-D inputs"):
        cr.plot.decision_boundary(net, np.zeros((5, 3)))


def test_decision_boundary_single_output_and_estimator(tmp_path):
    X, y = cr.datasets.circles(120, seed=0)
    net = cr.mlp([2, 8, 1], activation="tanh", output_activation="sigmoid", seed=0)
    grid = np.array([[0.0, 0.0], [2.0, 2.0]])
    from chainrule.plot import _class_of

    assert _class_of(net, grid, 0.5).tolist() == (net.predict(grid)[:, 0] > 0.5).astype(int).tolist()
    cr.plot.decision_boundary(net, X, y, path=tmp_path / "c.png", resolution=20)
    pytest.importorskip("sklearn")
    from chainrule.sklearn import MLPClassifier

    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, np.where(y == 1, "in", "out"))
    cr.plot.decision_boundary(est, X, np.where(y == 1, "in", "out"), path=tmp_path / "e.png", resolution=20)
    assert (tmp_path / "e.png").exists()


def test_gradient_norms_one_line_per_layer(trained, tmp_path):
    _, _, norms, _, _ = trained
    fig = cr.plot.gradient_norms(norms, path=tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == list(norms.norms)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), next(iter(norms.norms.values())))
    with pytest.raises(cr.ShapeError, match="GradientNormLogger"):
        cr.plot.gradient_norms(cr.GradientNormLogger())


def test_saving_leaves_no_open_pyplot_figure(trained, tmp_path):
    import matplotlib.pyplot as plt

    _, history, _, _, _ = trained
    before = plt.get_fignums()
    cr.plot.history(history, path=tmp_path / "x.png")
    assert plt.get_fignums() == before


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"chainrule\[plot\]"):
        cr.plot.history({"loss": [1.0]})

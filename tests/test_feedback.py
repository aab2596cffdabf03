"""Feedback alignment and direct feedback alignment as backward rules of fit: with the
transposed forward weights as feedback they are backprop; with random feedback they learn,
and the rule's angle to backprop is logged in the History."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.credit import (
    Backprop,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    LastLayerOnly,
    angle_degrees,
    final_angles,
    plot_alignment,
)


def data(n=48, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, n)


def max_rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


class RefreshFeedback(cr.Callback):
    """Set B := Wᵀ (FA) or B_1 := W_2ᵀ (DFA) before the first step and after every step."""

    def __init__(self, rule):
        self.rule = rule

    def _refresh(self):
        layers = self.model.layers
        if isinstance(self.rule, FeedbackAlignment):
            for i, b in self.rule.feedback.items():
                b[...] = layers[i].params["weight"].T
        else:
            (b,) = self.rule.feedback
            b[...] = self.rule.blocks[-1].layers[0].params["weight"].T

    def on_train_begin(self, logs=None):
        self._refresh()

    def on_batch_end(self, batch, logs=None):
        self._refresh()


FIT = dict(loss="crossentropy", epochs=2, batch_size=16, seed=0, verbose=0)  # 6 steps


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_feedback_alignment_with_transposed_weights_is_backprop(activation):
    X, y = data()
    net_bp = cr.mlp([4, 6, 5, 7, 3], activation=activation, seed=1, dtype=np.float64)
    net_fa = cr.mlp([4, 6, 5, 7, 3], activation=activation, seed=1, dtype=np.float64)
    net_bp.fit(X, y, optimizer=cr.Adam(1e-2), **FIT)
    rule = FeedbackAlignment(seed=0)
    net_fa.fit(X, y, optimizer=cr.Adam(1e-2), rule=rule, callbacks=[RefreshFeedback(rule)], **FIT)
    assert sorted(rule.feedback) == [2, 4, 6]
    for key, p in net_bp.params.items():
        assert max_rel_diff(net_fa.params[key], p) <= 1e-12, key


def test_direct_feedback_alignment_with_one_hidden_layer_and_w2_transposed_is_backprop():
    X, y = data()
    net_bp = cr.mlp([4, 8, 3], activation="tanh", seed=2, dtype=np.float64)
    net_dfa = cr.mlp([4, 8, 3], activation="tanh", seed=2, dtype=np.float64)
    net_bp.fit(X, y, optimizer=cr.SGD(0.2, momentum=0.9), **FIT)
    rule = DirectFeedbackAlignment(seed=0)
    net_dfa.fit(X, y, optimizer=cr.SGD(0.2, momentum=0.9), rule=rule, callbacks=[RefreshFeedback(rule)],
                **FIT)
    assert rule.feedback[0].shape == (3, 8)
    for key, p in net_bp.params.items():
        assert max_rel_diff(net_dfa.params[key], p) <= 1e-12, key


def test_dfa_with_an_output_activation_sends_the_error_at_the_last_dense():
    # MSE on a sigmoid output: e = dL/dz_top, through the sigmoid; with B := W_2ᵀ still backprop
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((32, 4)), rng.random((32, 2))
    kwargs = dict(loss="mse", epochs=2, batch_size=8, seed=0, verbose=0)
    net_bp = cr.mlp([4, 6, 2], activation="tanh", output_activation="sigmoid", seed=3, dtype=np.float64)
    net_dfa = cr.mlp([4, 6, 2], activation="tanh", output_activation="sigmoid", seed=3, dtype=np.float64)
    net_bp.fit(X, Y, optimizer=cr.SGD(0.5), **kwargs)
    rule = DirectFeedbackAlignment()
    net_dfa.fit(X, Y, optimizer=cr.SGD(0.5), rule=rule, callbacks=[RefreshFeedback(rule)], **kwargs)
    for key, p in net_bp.params.items():
        assert max_rel_diff(net_dfa.params[key], p) <= 1e-12, key


@pytest.mark.parametrize("make_rule", [lambda: FeedbackAlignment(seed=0), lambda: DirectFeedbackAlignment(seed=0)],
                         ids=["fa", "dfa"])
def test_random_feedback_learns_and_logs_angles(make_rule):
    (X, y), (Xt, yt) = cr.credit.teacher_task(3000, 1000, seed=0)
    net = cr.mlp([10, 64, 64, 10], activation="tanh", seed=1)
    rule = make_rule()
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), epochs=4, batch_size=64, seed=1,
                verbose=0, rule=rule)
    assert set(final_angles(h)) == {0, 2, 4}
    assert h.history["angle_4"] == [0.0] * 4  # the output layer gets the true gradient
    assert 0 < final_angles(h)[2] < 90  # the last hidden layer's update points the right way
    assert np.mean(net.predict(Xt).argmax(1) == yt) > 0.6
    # the rule's alignment helper agrees in kind on fresh data, and leaves the weights alone
    w = net.get_weights()
    angles = rule.alignment(net, Xt[:256], yt[:256])
    assert angles[4] == 0.0 and 0 < angles[2] < 90
    for a, b in zip(w, net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_feedback_matrices_are_fixed_and_seeded():
    X, y = data()
    r1, r2 = FeedbackAlignment(seed=7), FeedbackAlignment(seed=7)
    for r in (r1, r2):
        cr.mlp([4, 6, 3], seed=1).fit(X, y, loss="crossentropy", optimizer=cr.Adam(), rule=r, verbose=0)
    np.testing.assert_array_equal(r1.feedback[2], r2.feedback[2])
    before = r1.feedback[2].copy()
    r1.net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(), rule=r1, verbose=0)
    np.testing.assert_array_equal(r1.feedback[2], before)


def test_backprop_rule_equals_training_without_a_rule_bit_for_bit():
    X, y = data(n=100, seed=3)
    a, b = cr.mlp([4, 8, 8, 3], seed=4), cr.mlp([4, 8, 8, 3], seed=4)
    ha = a.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-2), epochs=3, batch_size=10, seed=0, verbose=0)
    hb = b.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-2), epochs=3, batch_size=10, seed=0, verbose=0,
               rule=Backprop())
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(p, q)
    assert ha.history["loss"] == hb.history["loss"]
    assert hb.history["angle_0"] == [0.0] * 3


def test_last_layer_only_leaves_the_hidden_layers_at_their_start():
    X, y = data(n=64)
    net = cr.mlp([4, 8, 8, 3], seed=5)
    w0 = dict(zip(net.params, net.get_weights(), strict=True))
    net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-2), epochs=2, batch_size=16, verbose=0,
            rule=LastLayerOnly())
    for key, p in net.params.items():
        if key.startswith("4."):
            assert np.any(p != w0[key])
        else:
            np.testing.assert_array_equal(p, w0[key])


def test_track_every_none_logs_no_angles():
    X, y = data()
    h = cr.mlp([4, 6, 3], seed=1).fit(X, y, loss="crossentropy", optimizer=cr.Adam(), verbose=0,
                                      rule=FeedbackAlignment(seed=0, track_every=None))
    assert list(h.history) == ["loss"]


def test_angle_is_exact_at_zero_and_ninety_when_a_side_is_zero():
    a = [np.array([[1.0, 2.0]], dtype=np.float32), np.array([3.0], dtype=np.float32)]
    assert angle_degrees(a, a) == 0.0
    assert angle_degrees(a, [np.zeros((1, 2)), np.zeros(1)]) == 90.0
    assert angle_degrees([np.array([1.0, 0.0])], [np.array([0.0, 1.0])]) == pytest.approx(90.0)
    assert angle_degrees([np.array([1.0, 0.0])], [np.array([-1.0, 0.0])]) == pytest.approx(180.0)


class Scale(cr.Layer):
    """A layer with a parameter that is not a Dense: y = x · s."""

    def __init__(self, n):
        super().__init__()
        self.params["s"] = np.ones(n)
        self.grads["s"] = np.zeros(n)

    def forward(self, x, training=False):
        self._input = x
        return x * self.params["s"]

    def backward(self, grad):
        self.grads["s"][...] = (grad * self._input).sum(0)
        return grad * self.params["s"]


@pytest.mark.parametrize("rule", [FeedbackAlignment(), DirectFeedbackAlignment()], ids=["fa", "dfa"])
def test_feedback_rules_name_a_parametric_layer_they_cannot_handle(rule):
    X, y = data()
    net = cr.Sequential(cr.Dense(4, 5), Scale(5), cr.Tanh(), cr.Dense(5, 3))
    with pytest.raises(cr.ConfigError, match="layer 1"):
        net.fit(X, y, loss="crossentropy", rule=rule, verbose=0)


def test_plot_alignment_writes_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = data()
    hists = {}
    for rule in (FeedbackAlignment(seed=0, track_every=1), DirectFeedbackAlignment(seed=0, track_every=1)):
        net = cr.mlp([4, 8, 8, 3], activation="tanh", seed=1)
        hists[rule.name] = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-2), epochs=3, verbose=0,
                                   rule=rule)
    path = tmp_path / "angles.png"
    ax = plot_alignment(hists, path=path)
    assert path.stat().st_size > 1000
    assert len(ax.get_lines()) == 1 + 4  # the 90° guide and two hidden layers per rule
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
    with pytest.raises(cr.ConfigError, match="no alignment"):
        plot_alignment(cr.History())

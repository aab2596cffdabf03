"""Every gradient explain writes out agrees with central differences, on the built-in examples
and on random small networks (up to 4 Dense layers of up to 5 units, seeded)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain.examples import EXAMPLES, example

SMOOTH = [cr.Sigmoid, cr.Tanh, cr.Softplus, cr.ELU, None]
KINKED = [cr.ReLU, cr.LeakyReLU]


def central_difference(net, loss, x, y, layer, name, index, h=1e-5):
    """Two-point central difference, written here independently of chainrule.gradcheck."""
    p = net.layers[layer].params[name]
    orig = p[index]
    p[index] = orig + h
    up = loss.value(net.forward(x), y)
    p[index] = orig - h
    down = loss.value(net.forward(x), y)
    p[index] = orig
    return (up - down) / (2 * h)


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    n_levels = int(rng.integers(1, 5))
    sizes = [int(s) for s in rng.integers(1, 6, size=n_levels + 1)]
    layers = []
    for lvl in range(n_levels):
        last = lvl == n_levels - 1
        use_bias = bool(rng.random() < 0.8)
        layers.append(cr.Dense(sizes[lvl], sizes[lvl + 1], weight=rng.uniform(-1, 1, (sizes[lvl], sizes[lvl + 1])),
                               bias=rng.uniform(-0.5, 0.5, sizes[lvl + 1]) if use_bias else None,
                               use_bias=use_bias))
        choices = SMOOTH + KINKED + ([cr.Softmax, None, None, cr.Sigmoid] if last and sizes[-1] > 1 else [])
        act = choices[int(rng.integers(len(choices)))]
        if act is not None:
            layers.append(act())
    net = cr.Sequential(*layers, dtype=np.float64)
    n = int(rng.integers(1, 4))
    K = sizes[-1]
    last = layers[-1]
    if isinstance(last, cr.Dense):   # logits
        options = [cr.CrossEntropy(), cr.CrossEntropy(reduction="sum"), cr.BinaryCrossEntropy(from_logits=True),
                   cr.MSE()]
    elif isinstance(last, cr.Sigmoid):
        options = [cr.BinaryCrossEntropy(), cr.SSE(reduction="sum")]
    else:
        options = [cr.SSE(), cr.MSE(reduction="sum"), cr.SSE(reduction="sum"), cr.MSE()]
    loss = options[int(rng.integers(len(options)))]
    if isinstance(loss, cr.CrossEntropy):
        y = rng.integers(0, K, size=n)
    elif isinstance(loss, cr.BinaryCrossEntropy):
        y = rng.random((n, K))
    else:
        y = rng.normal(size=(n, K))
    # keep kinked activations away from their kink, where no derivative exists
    for _ in range(1000):
        x = rng.normal(size=(n, sizes[0]))
        z, ok = x, True
        for layer in net.layers:
            z_in = z
            z = layer.forward(z)
            # ELU is smooth only once at 0: its second derivative jumps, which the differences see
            if isinstance(layer, (cr.ReLU, cr.LeakyReLU, cr.ELU)) and np.abs(z_in).min() < 0.02:
                ok = False
        if ok:
            return net, loss, x, y
    raise AssertionError(f"seed {seed}: no input away from the kinks")


@pytest.mark.parametrize("seed", range(32))
def test_random_network_gradients_agree_with_finite_differences(seed):
    net, loss, x, y = random_case(seed)
    notation = "matrix" if seed % 3 == 0 else "scalar"
    trace = cr.explain(net, loss, x, y, lr=0.1, notation=notation)
    assert not trace.oversized
    n_params = sum(p.size for p in net.params.values())
    assert len(trace.checks) == n_params
    for s in trace.checks:
        assert s.rel_error < 1e-7, (s.name, s.value, s.numeric)
    # and an independent two-point difference agrees with the value the trace shows
    work = net.astype(np.float64)
    for s in trace.checks[:: max(1, len(trace.checks) // 6)]:
        layer, name, index = s.key
        fd = central_difference(work, loss, np.asarray(x, dtype=np.float64), y, layer, name, index)
        assert s.value == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("seed", range(0, 32, 4))
def test_trace_gradients_equal_the_library_gradients(seed):
    net, loss, x, y = random_case(seed)
    trace = cr.explain(net, loss, x, y)
    report = cr.gradcheck(net, loss, np.asarray(x, dtype=np.float64), y)
    library = {}
    for c in report.checks:
        layer, name = c.name.split(".")
        for index in np.ndindex(c.analytic.shape):
            library[(int(layer), name, index)] = c.analytic[index]
    for s in trace.checks:
        assert s.value == pytest.approx(library[s.key], rel=1e-12, abs=1e-15)


def test_scalar_gradient_steps_equal_the_checked_values():
    net, loss, x, y = random_case(7)
    trace = cr.explain(net, loss, x, y)
    checked = {s.name: s.value for s in trace.checks}
    final = {}
    for s in trace.steps:
        if s.section in ("backward", "gradient") and s.param and s.sample is None:
            final[s.name] = s.value
    assert final.keys() == checked.keys()
    for k, v in final.items():
        assert v == pytest.approx(checked[k], rel=1e-12, abs=1e-15), k


def test_several_hidden_layers_are_named_by_layer():
    net = cr.Sequential(cr.Dense(2, 3, seed=0), cr.Tanh(), cr.Dense(3, 2, seed=1), cr.Sigmoid(),
                        cr.Dense(2, 1, seed=2), cr.Sigmoid(), dtype=np.float64)
    trace = cr.explain(net, "sse", [0.3, -0.2], [0.7])
    text = str(trace)
    assert "net_h1_1 = w1·i1 + w2·i2 + b1_h1_1" in text
    assert "net_h2_1 = w7·out_h1_1 + w8·out_h1_2 + w9·out_h1_3 + b2_h2_1" in text
    assert "net_o1 = w13·out_h2_1 + w14·out_h2_2 + b3_o1" in text
    assert "dE/dout_h1_1 = dE_h2_1/dout_h1_1 + dE_h2_2/dout_h1_1" in text
    assert trace.max_relative_error < 1e-7


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_gradients_agree_with_finite_differences(name):
    trace = example(name).explain(n_steps=2)
    assert trace.checks and trace.max_relative_error < 1e-7
    assert trace.errors[-1] < trace.errors[0]


def test_batch_gradient_is_the_sum_of_the_samples():
    trace = example("test-score").explain()
    s = trace.find("dE/dw7", section="gradient")
    parts = s.rhs[1].numbers()
    assert len(parts) == 3
    assert sum(parts) == pytest.approx(s.value, rel=1e-12)
    # the inputs are the tutorial's, scaled by their column maxima (3 h studied, 9 h slept)
    net_h1 = trace.find("net_h1[1]")
    assert net_h1.rhs[1].numbers()[1] == pytest.approx(2 / 3) and net_h1.rhs[1].numbers()[3] == 1.0

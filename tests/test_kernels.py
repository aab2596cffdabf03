"""Compiled kernels (chainrule.kernels): the switch, the lazy numba import, every kernel against
the NumPy reference path, and the flush of subnormal optimizer state.

The NumPy path is checked against torch.optim's algorithms in test_optim.py and against closed
forms and finite differences in the loss tests; here each numba kernel must follow it (to 1e-12
relative in float64, 1e-6 in float32) on odd shapes and strided arrays over several steps. The
numba side is skipped when numba is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import kernels
from chainrule.errors import ConfigError

TOL = {np.float64: 1e-12, np.float32: 1e-6}
TINY = {np.float32: np.finfo(np.float32).tiny, np.float64: np.finfo(np.float64).tiny}


@pytest.fixture(autouse=True)
def _restore_settings():
    saved = dict(kernels._settings)
    yield
    kernels._settings.update(saved)


def needs_numba():
    pytest.importorskip("numba")


def run_python(code: str, **env) -> str:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    for name in (kernels.KERNELS_ENV, kernels.FLUSH_ENV):
        if name not in env:
            full.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- the switch ----------------------------------------------------------------------------------
def test_import_chainrule_does_not_import_numba():
    code = "import sys, chainrule; print('numba' in sys.modules)"
    assert run_python(code) == "False"
    assert run_python(code, CHAINRULE_KERNELS="numba" if _has_numba() else "numpy") == "False"


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def test_environment_variable_picks_the_kernels():
    code = ("import importlib.util, chainrule.kernels as k;"
            " print(k.active(), k.flush_subnormals(), importlib.util.find_spec('numba') is not None)")
    assert run_python(code, CHAINRULE_KERNELS="numpy").split()[:2] == ["numpy", "True"]
    backend, flush, installed = run_python(code, CHAINRULE_KERNELS="auto", CHAINRULE_FLUSH_SUBNORMALS="0").split()
    assert (backend, flush) == ("numba" if installed == "True" else "numpy", "False")


def test_bad_environment_values_name_the_variable(monkeypatch):
    kernels._settings.update(backend=None, flush=None)
    monkeypatch.setenv("CHAINRULE_KERNELS", "fast")
    with pytest.raises(ConfigError, match="CHAINRULE_KERNELS must be one of .*'fast'"):
        kernels.active()
    monkeypatch.setenv("CHAINRULE_FLUSH_SUBNORMALS", "maybe")
    with pytest.raises(ConfigError, match="CHAINRULE_FLUSH_SUBNORMALS must be 1 or 0, got 'maybe'"):
        kernels.flush_subnormals()


def test_use_switches_and_refuses_unknown_names():
    assert kernels.use("numpy") == "numpy" and kernels.active() == "numpy"
    assert kernels.use("auto") == ("numba" if _has_numba() else "numpy")
    with pytest.raises(ConfigError, match="must be one of .*got 'cuda'"):
        kernels.use("cuda")
    with pytest.raises(ConfigError, match="must be one of"):
        kernels.use(None)


def test_numba_requested_without_numba_says_how_to_install(monkeypatch):
    monkeypatch.setattr(kernels, "_numba_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"numba is not installed: pip install 'chainrule\[fast\]'"):
        kernels.use("numba")
    assert kernels.use("auto") == "numpy"
    kernels._settings["backend"] = None
    monkeypatch.setenv("CHAINRULE_KERNELS", "numba")
    with pytest.raises(ConfigError, match=r"CHAINRULE_KERNELS is 'numba'.*chainrule\[fast\]"):
        kernels.active()


def test_flush_switch_takes_booleans_only():
    assert kernels.flush_subnormals(False) is False and kernels.flush_subnormals() is False
    assert kernels.flush_subnormals(True) is True
    with pytest.raises(ConfigError, match="flush_subnormals enabled must be True or False, got 'no'"):
        kernels.flush_subnormals("no")


# --- optimizer kernels against the NumPy path ----------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda: cr.SGD(lr=0.1),
    "sgd-momentum": lambda: cr.SGD(lr=0.1, momentum=0.9),
    "sgd-dampening-decay": lambda: cr.SGD(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    "sgd-nesterov": lambda: cr.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.02),
    "adam": lambda: cr.Adam(lr=0.01),
    "adam-decay": lambda: cr.Adam(lr=0.01, weight_decay=0.1),
    "adamw": lambda: cr.AdamW(lr=0.01, weight_decay=0.05),
    "rmsprop": lambda: cr.RMSProp(lr=0.01),
    "rmsprop-centered-momentum": lambda: cr.RMSProp(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1),
    "adagrad": lambda: cr.Adagrad(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1),
}


@pytest.fixture
def kernel_calls(monkeypatch):
    """The (module, kernel) names the code under test asked to run compiled (SGD's kernel also on
    the small parameters it leaves to NumPy by default)."""
    monkeypatch.setattr(kernels, "SGD_MIN_SIZE", 0)
    calls, real = [], kernels.compiled
    monkeypatch.setattr(kernels, "compiled", lambda module, name: calls.append((module, name)) or real(module, name))
    return calls

# (parameter, gradient) layouts: odd sizes, a strided parameter, transposed gradients, 1-D and 3-D
LAYOUTS = {
    "odd-2d": lambda a, b: (a[:7, :13].copy(), b[:7, :13].copy()),
    "sliced-param": lambda a, b: (a[:, ::2], b[:, ::2].copy()),
    "transposed-grad": lambda a, b: (a[:13, :7].copy(), b[:7, :13].T),
    "1d": lambda a, b: (a.reshape(-1)[:101].copy(), b.reshape(-1)[:101].copy()),
    "3d-transposed-param": lambda a, b: (a.reshape(-1)[:105].reshape(3, 5, 7).transpose(2, 0, 1),
                                         b.reshape(-1)[:105].reshape(7, 3, 5).copy()),
}


def trajectory(backend, make, layout, dtype, steps=6):
    """The parameter and state after ``steps`` updates of a fixed gradient sequence."""
    kernels.use(backend)
    rng = np.random.default_rng(42)
    opt, state = make(), {}
    param, _ = LAYOUTS[layout](rng.normal(size=(20, 26)).astype(dtype), np.zeros((20, 26), dtype))
    for step in range(steps):
        scale = 10.0 if step == 2 else 1.0  # one large step, to move the moments
        _, grad = LAYOUTS[layout](np.zeros((20, 26), dtype), (scale * rng.normal(size=(20, 26))).astype(dtype))
        opt._update(param, grad, state)
    return param, state


def assert_close(actual, expected, dtype, what):
    """Relative to each entry, with a floor at the tolerance times the array's largest entry
    (an entry near zero comes from a difference, where the relative error is not defined)."""
    tol = TOL[dtype]
    scale = float(np.max(np.abs(expected))) if np.size(expected) else 0.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_kernel_follows_numpy(name, dtype, layout, kernel_calls):
    needs_numba()
    make = OPTIMIZERS[name]
    expected, expected_state = trajectory("numpy", make, layout, dtype)
    assert kernel_calls == []
    actual, actual_state = trajectory("numba", make, layout, dtype)
    kernel = {"SGD": "sgd", "Adam": "adam", "AdamW": "adam", "RMSProp": "rmsprop", "Adagrad": "adagrad"}
    assert kernel_calls == [("optim", kernel[type(make()).__name__])] * 6
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert_close(actual, expected, dtype, f"{name} parameter")
    assert set(actual_state) <= set(expected_state)
    for key, value in actual_state.items():
        if key == "step":  # SGD's scratch array for lr·g in NumPy, unused by the kernel
            continue
        if isinstance(value, np.ndarray):
            assert value.dtype == expected_state[key].dtype
            assert_close(value, expected_state[key], dtype, f"{name} state {key}")
        else:
            assert value == expected_state[key]


def test_sgd_leaves_small_parameters_to_numpy(kernel_calls, monkeypatch):
    needs_numba()
    monkeypatch.setattr(kernels, "SGD_MIN_SIZE", 100)
    kernels.use("numba")
    opt, state = cr.SGD(lr=0.1, momentum=0.9), {}
    opt._update(np.ones(99), np.ones(99), state)
    assert kernel_calls == []
    opt._update(np.ones(100), np.ones(100), {})
    assert kernel_calls == [("optim", "sgd")]


def test_optimizer_kernel_runs_through_step_on_a_network():
    needs_numba()
    X = np.random.default_rng(0).normal(size=(40, 5))
    y = np.arange(40) % 3
    params = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        net = cr.mlp([5, 8, 3], seed=1, dtype=np.float64)
        net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.01), epochs=3, batch_size=8, seed=0, verbose=0)
        params.append(net.layers[0].params["weight"].copy())
    assert_close(params[1], params[0], np.float64, "first layer weights after 3 epochs")


# --- loss kernels against the NumPy path ---------------------------------------------------------
def loss_cases(dtype):
    rng = np.random.default_rng(3)
    z = (3 * rng.normal(size=(37, 11))).astype(dtype)
    z_t = np.ascontiguousarray((3 * rng.normal(size=(11, 37))).astype(dtype)).T
    labels = rng.integers(0, 11, 37)
    rows = rng.random((37, 11))
    rows /= rows.sum(axis=1, keepdims=True)
    return [
        ("labels", cr.CrossEntropy(), z, labels),
        ("labels-transposed-logits", cr.CrossEntropy(), z_t, labels),
        ("labels-sum", cr.CrossEntropy(reduction="sum"), z, labels),
        ("probability-rows", cr.CrossEntropy(), z, rows),
        ("sequence", cr.CrossEntropy(), z[:36].reshape(4, 9, 11), labels[:36].reshape(4, 9)),
        ("bce-logits", cr.BinaryCrossEntropy(from_logits=True), z, (rng.random((37, 11)) > 0.5).astype(float)),
        ("bce-logits-strided", cr.BinaryCrossEntropy(from_logits=True, reduction="sum"), z_t[:, ::2],
         rng.random((37, 6))),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(7))
def test_loss_kernel_follows_numpy(case, dtype, kernel_calls):
    needs_numba()
    name, loss, output, target = loss_cases(dtype)[case]
    kernels.use("numpy")
    value, grad = loss.value_and_grad(output, target)
    assert kernel_calls == []
    kernels.use("numba")
    fast_value, fast_grad = loss.value_and_grad(output, target)
    assert [module for module, _ in kernel_calls] == ["losses"]
    assert fast_grad.dtype == grad.dtype and fast_grad.shape == grad.shape == output.shape
    assert fast_value == pytest.approx(value, rel=TOL[dtype], abs=0)
    assert_close(fast_grad, grad, dtype, f"{name} gradient")


# --- subnormal state -----------------------------------------------------------------------------
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not _has_numba(), reason="numba missing"))]
STEPS = 4 * kernels.FLUSH_EVERY  # a multiple of the NumPy path's flush period


def momentum_run(backend, flush, dtype, start):
    """SGD momentum 0.9 fed one gradient ``start`` and then zeros, through Optimizer.step."""
    kernels.use(backend)
    kernels.flush_subnormals(flush)
    layer = cr.Dense(1, len(start), dtype=dtype)
    layer.params["weight"][...] = 1.0
    layer.params["bias"][...] = 0.5
    opt = cr.SGD(lr=0.5, momentum=0.9)
    for step in range(STEPS):
        layer.grads["weight"][...] = start if step == 0 else 0
        layer.grads["bias"][...] = 0
        opt.step(layer)
    return layer.params["weight"][0].copy(), opt.state["0.weight"]["momentum"][0].copy()


def momentum_reference(dtype, start):
    """The same recurrence in scalar IEEE arithmetic: b ← 0.9·b + 0, θ ← θ − 0.5·b."""
    dt = np.dtype(dtype).type
    weights, buffers = [], []
    for b in start.astype(dtype):
        w = dt(1.0) - dt(0.5) * b
        for _ in range(STEPS - 1):
            b = b * dt(0.9) + dt(0)
            w = w - b * dt(0.5)
        weights.append(w)
        buffers.append(b)
    return np.array(weights, dtype), np.array(buffers, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,start", [
    (np.float32, [1e-30, -3e-31, 5e-32, 0.5, 1e-3]),
    (np.float64, [1e-300, -3e-301, 2e-306, 0.5, 1e-3]),
])
def test_decaying_momentum_becomes_zero_instead_of_subnormal(backend, dtype, start, kernel_calls):
    start = np.array(start, dtype)
    ieee_weight, ieee_buffer = momentum_reference(dtype, start)
    subnormal = (ieee_buffer != 0) & (np.abs(ieee_buffer) < TINY[dtype])
    assert subnormal[:3].all() and not subnormal[3:].any()  # the test exercises both kinds

    weight, buffer = momentum_run(backend, False, dtype, start)  # plain IEEE: bit for bit
    np.testing.assert_array_equal(buffer, ieee_buffer)
    np.testing.assert_array_equal(weight, ieee_weight)

    weight, buffer = momentum_run(backend, True, dtype, start)
    assert bool(kernel_calls) == (backend == "numba")
    assert np.all(buffer[:3] == 0) and np.all(np.signbit(buffer[:3]) == False)  # noqa: E712
    np.testing.assert_array_equal(buffer[3:], ieee_buffer[3:])  # normal values untouched
    np.testing.assert_array_equal(weight, ieee_weight)  # a subnormal step does not move a weight of 1


# no coupled weight decay here: it would keep every gradient, and so the state, away from 0
DECAYING = {
    "sgd-nesterov": lambda: cr.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: cr.Adam(lr=0.01),
    "adamw": lambda: cr.AdamW(lr=0.01, weight_decay=0.05),
    "rmsprop-momentum": lambda: cr.RMSProp(lr=0.01, momentum=0.9),
    "rmsprop-centered": lambda: cr.RMSProp(lr=0.01, centered=True, momentum=0.9),
    "adagrad": lambda: cr.Adagrad(lr=0.1),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(DECAYING))
def test_flush_changes_only_subnormal_state(backend, name, kernel_calls):
    """Gradients spanning normal and subnormal-producing magnitudes, then zeros for some entries:
    with the flush on the parameters are the same bits, the flushed state holds no subnormal
    value and differs from the unflushed one by less than (steps × the smallest normal number)."""
    dtype = np.float32
    rng = np.random.default_rng(7)
    magnitudes = np.logspace(-44, 0, 24).astype(dtype)
    grads = [(rng.choice([-1, 1], size=24) * magnitudes * rng.uniform(0.5, 1, 24)).astype(dtype)
             for _ in range(3 * kernels.FLUSH_EVERY)]
    for g in grads[5:]:
        g[::2] = 0  # every other entry stops learning and its state decays
    runs = {}
    for flush in (False, True):
        kernels.use(backend)
        kernels.flush_subnormals(flush)
        opt, param = DECAYING[name](), np.linspace(-1, 1, 24).astype(dtype)
        for g in grads:
            layer_like = _Holder(param, g)
            opt.step(layer_like)
        runs[flush] = param, opt.state["0.weight"]
    (p_off, s_off), (p_on, s_on) = runs[False], runs[True]
    assert bool(kernel_calls) == (backend == "numba")
    np.testing.assert_array_equal(p_on, p_off)
    flushed = [key for key in opt.flushed if key in s_off]  # (RMSProp keeps no grad_avg uncentered)
    assert flushed
    for key in flushed:
        off, on = s_off[key], s_on[key]
        # each flush moves a value by less than tiny, and every state recurrence is x ← βx + u
        # with β ≤ 1, so after n steps the two runs differ by less than n·tiny
        assert np.all(np.abs(on.astype(float) - off) < len(grads) * float(TINY[dtype])), key
        assert np.any((off != 0) & (np.abs(off) < TINY[dtype])), f"{key} never held a subnormal: nothing checked"
        assert not np.any((on != 0) & (np.abs(on) < TINY[dtype])), f"{key} keeps subnormal values"
    for key in set(s_off) - set(opt.flushed) - {"step"}:  # the rest: the same bits
        np.testing.assert_array_equal(s_on[key], s_off[key])


class _Holder:
    """The smallest thing Optimizer.step accepts: one layer with one parameter."""

    def __init__(self, param, grad):
        self.params, self.grads = {"weight": param}, {"weight": grad}
        self.layers = [self]

    def trainable(self):
        return [("weight", self.params["weight"], self.grads["weight"])]


def test_numpy_flush_runs_every_flush_every_steps():
    kernels.use("numpy")
    kernels.flush_subnormals(True)
    param, grad = np.ones(3, np.float32), np.array([1e-39, 0, 1], np.float32)
    opt, holder = cr.SGD(lr=0.0, momentum=0.5), _Holder(param, grad)
    opt.step(holder)
    buffer = opt.state["0.weight"]["momentum"]
    assert buffer[0] == np.float32(1e-39)  # between flushes the NumPy path keeps IEEE values
    grad[...] = 0
    for _ in range(kernels.FLUSH_EVERY - 1):
        opt.step(holder)
    assert opt.iterations == kernels.FLUSH_EVERY and buffer[0] == 0


def test_state_of_numpy_updates_is_flushed_with_numba_active(kernel_calls, monkeypatch):
    """With numba active, SGD leaves small parameters to NumPy: their state is flushed too."""
    needs_numba()
    monkeypatch.setattr(kernels, "SGD_MIN_SIZE", 4096)
    start = np.array([1e-30, -3e-31, 5e-32, 0.5, 1e-3], np.float32)
    _, buffer = momentum_run("numba", True, np.float32, start)
    assert kernel_calls == []
    assert np.all(buffer[:3] == 0)
    np.testing.assert_array_equal(buffer[3:], momentum_reference(np.float32, start)[1][3:])


@pytest.mark.parametrize("name", list(DECAYING))
def test_kernels_flush_each_value_where_it_arises(name, kernel_calls):
    """One update (no periodic flush: ``_update`` directly) with gradients whose state lands in
    the subnormal range: the kernels leave none there, and do without the flush."""
    needs_numba()
    grad = np.logspace(-44, -17, 28).astype(np.float32)
    found = {}
    for flush in (False, True):
        kernels.use("numba")
        kernels.flush_subnormals(flush)
        opt, state = DECAYING[name](), {}
        opt._update(np.linspace(-1, 1, 28).astype(np.float32), grad, state)
        found[flush] = sum(int(np.count_nonzero((state[key] != 0) & (np.abs(state[key]) < TINY[np.float32])))
                           for key in opt.flushed if key in state)
    assert kernel_calls and found[False] > 0 and found[True] == 0

"""Embedding: row lookup, scattered gradients for repeated ids, integer input through Sequential."""

import time

import numpy as np
import pytest

import chainrule as cr


def net_of(*layers, dtype=np.float64):
    return cr.Sequential(*layers, dtype=dtype)


# --- forward and backward -------------------------------------------------------------------
def test_forward_looks_up_rows_and_backward_adds_repeated_ids():
    table = np.arange(12.0).reshape(4, 3)
    layer = cr.Embedding(4, 3, weight=table, dtype=np.float64)
    ids = np.array([[1, 3, 1], [0, 1, 2]])
    out = layer.forward(ids)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 1], [9.0, 10.0, 11.0])
    np.testing.assert_array_equal(out[1, 0], [0.0, 1.0, 2.0])
    delta = np.arange(18.0).reshape(2, 3, 3)
    assert layer.backward(delta) is None           # integer ids have no gradient
    expected = np.zeros((4, 3))
    expected[1] = delta[0, 0] + delta[0, 2] + delta[1, 1]   # id 1 three times
    expected[3] = delta[0, 1]
    expected[0] = delta[1, 0]
    expected[2] = delta[1, 2]
    np.testing.assert_array_equal(layer.grads["weight"], expected)
    layer.forward(np.array([[0]]))                 # a second pass starts from zero
    layer.backward_params(np.ones((1, 1, 3)))
    np.testing.assert_array_equal(layer.grads["weight"], [[1, 1, 1], [0] * 3, [0] * 3, [0] * 3])


def test_default_table_is_standard_normal_drawn_in_float64():
    layer = cr.Embedding(50, 7, seed=3)
    net_of(layer)
    np.testing.assert_array_equal(layer.params["weight"], np.random.default_rng(3).normal(0.0, 1.0, (50, 7)))
    big = cr.Embedding(2000, 100, seed=0).params["weight"]
    assert abs(big.std() - 1.0) < 0.01 and abs(big.mean()) < 0.01


def test_gradients_match_central_differences_through_an_lstm():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 5, (3, 7))
    X[0, :3] = 2                                   # repeated ids
    y = rng.normal(size=(3, 2))
    net = net_of(cr.Embedding(5, 3, seed=0), cr.LSTM(3, 4, seed=1), cr.Dense(4, 2, seed=2))
    report = cr.gradcheck(net, cr.MSE(), X, y)
    assert report.ok, str(report)
    assert report.checks[0].name == "0.weight" and report.checks[0].max_relative_error < 1e-7
    with pytest.raises(cr.ConfigError, match="integer ids.*check_input=False"):
        cr.gradcheck(net, cr.MSE(), X, y, check_input=True)


def test_equals_torch_embedding_forward_and_gradient_with_repeated_ids():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    table = rng.normal(size=(6, 4))
    ids = np.array([[5, 0, 5, 5], [1, 0, 2, 5]])
    delta = rng.normal(size=(2, 4, 4))
    layer = cr.Embedding(6, 4, weight=table, dtype=np.float64)
    out = layer.forward(ids.astype(np.intp))
    layer.backward(delta)
    w = torch.tensor(table, requires_grad=True)
    t_out = torch.nn.functional.embedding(torch.tensor(ids), w)
    t_out.backward(torch.tensor(delta))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["weight"], w.grad.numpy(), rtol=0, atol=1e-10)


# --- integer input through Sequential -------------------------------------------------------
def test_ids_reach_the_layer_as_integers_in_fit_predict_evaluate_and_call():
    rng = np.random.default_rng(4)
    X = rng.integers(0, 9, (40, 6))
    y = (X[:, 0] >= 5).astype(int)                  # the class is a function of the first id
    emb = cr.Embedding(9, 5, seed=0)
    net = cr.Sequential(emb, cr.RNN(5, 8, seed=1), cr.Dense(8, 2, seed=2))
    seen = []
    forward = emb.forward
    emb.forward = lambda x, training=False: (seen.append(x.dtype), forward(x, training))[1]
    history = net.fit(X, y, loss="cross_entropy", optimizer=cr.Adam(0.05), epochs=15, batch_size=8,
                      seed=0, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert net.predict(X.astype(np.float64)).shape == (40, 2)   # whole floats are accepted
    assert net(X[:3]).dtype == np.float32
    assert net.evaluate(X, y, metrics=["accuracy"])["accuracy"] > 0.9
    assert set(seen) == {np.dtype(np.intp)}
    net(X[:3])
    assert net.backward(np.ones((3, 2), np.float32)) is None   # no dL/dx for ids; grads are filled
    assert np.abs(emb.grads["weight"]).sum() > 0


@pytest.mark.parametrize("bad, message", [
    (np.array([[1, 2], [2.5, 0]]), r"whole numbers.*got 2\.5 at index \[1, 0\]"),
    (np.array([[1, np.nan], [2, 0]]), r"got nan at index \[0, 1\]"),
    (np.array([[1, 2], [0, 9]]), r"id 9 at index \[1, 1\], outside \[0, 9\)"),
    (np.array([[1, -1], [0, 2]]), r"id -1 at index \[0, 1\], outside"),
    (np.array([[1.0, 2.0], [0.0, 12.0]]), r"id 12 at index \[1, 1\]"),
    (np.array([[True, False]]), r"integer ids.*dtype bool"),
    (np.array([["a", "b"]]), r"integer ids.*dtype <U1"),
])
def test_bad_ids_are_data_errors_naming_the_layer_the_value_and_where(bad, message):
    net = cr.Sequential(cr.Embedding(9, 2, seed=0), cr.RNN(2, 3, seed=0))
    for call in (net.predict, net, lambda x: net.fit(x, np.zeros((len(x), 3)), verbose=0),
                 lambda x: net.evaluate(x, np.zeros((len(x), 3)), loss="mse")):
        with pytest.raises(cr.DataError, match=r"Embedding\(num_embeddings=9, dim=2\)"):
            call(bad)
        with pytest.raises(cr.DataError, match=message):
            call(bad)
    with pytest.raises(cr.DataError, match=message):
        net.layers[0](bad)


def test_a_scaler_is_refused_in_front_of_integer_ids():
    net = cr.Sequential(cr.Embedding(4, 2, seed=0), cr.RNN(2, 3, seed=0))
    net.scaler = cr.Standardizer()
    with pytest.raises(cr.ConfigError, match="integer ids.*no input scaler, got Standardizer"):
        net.fit(np.zeros((3, 2), int), np.zeros((3, 3)), verbose=0)
    with pytest.raises(cr.ConfigError, match="no input scaler"):
        net.predict(np.zeros((3, 2), int))


def test_bad_arguments_are_config_errors():
    with pytest.raises(cr.ConfigError, match="Embedding num_embeddings"):
        cr.Embedding(0, 3)
    with pytest.raises(cr.ConfigError, match="Embedding dim"):
        cr.Embedding(3, 2.0)
    with pytest.raises(cr.ConfigError, match="Embedding dim"):
        cr.Embedding(3, True)


# --- files ----------------------------------------------------------------------------------
def test_save_and_load_give_the_same_outputs_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 11, (6, 5))
    net = cr.Sequential(cr.Embedding(11, 4, seed=0), cr.LSTM(4, 3, return_sequences=True, seed=1),
                        cr.TimeDistributed(cr.Dense(3, 2, seed=2)))
    net.fit(X, rng.normal(size=(6, 5, 2)), epochs=2, verbose=0)
    net.save(tmp_path / "emb.npz")
    back = cr.load(tmp_path / "emb.npz")
    assert type(back.layers[0]) is cr.Embedding and back.layers[0].get_config() == {"num_embeddings": 11, "dim": 4}
    assert np.array_equal(back.predict(X), net.predict(X))


def test_the_size_guard_refuses_a_huge_table_before_building_it(tmp_path):
    from chainrule import io as cr_io

    header, arrays = cr_io.model_parts(cr.Sequential(cr.Embedding(5, 3, seed=0)))
    header["layers"][0]["config"].update(num_embeddings=10**8, dim=10**4)
    path = tmp_path / "huge.npz"
    cr_io.write(path, header, arrays)
    start = time.perf_counter()
    with pytest.raises(cr.FileFormatError, match=r"num_embeddings.*100000000.*cannot hold"):
        cr.load(path)
    assert time.perf_counter() - start < 1.0

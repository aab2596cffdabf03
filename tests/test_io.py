"""save and load: bit-identical round trips, refusal of anything that is not a chainrule file,
and atomic writes."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import chainrule as cr

HEADER = "__chainrule__"


def sample_net(dtype, seed=0):
    net = cr.Sequential(
        cr.Dense(4, 6, bias_init="normal", seed=seed), cr.LeakyReLU(0.2), cr.Dropout(0.3, seed=5),
        cr.Dense(6, 5, use_bias=False, seed=seed + 1), cr.ELU(0.5), cr.Softplus(), cr.Tanh(),
        cr.Dense(5, 3, seed=seed + 2), cr.Sigmoid(), cr.Identity(), cr.ReLU(), cr.Softmax(),
        dtype=dtype,
    )
    net.layers[0].freeze("bias")
    net.layers[7].freeze()
    return net


def data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=3.0, scale=[1.0, 5.0, 0.1, 2.0], size=(n, 4))


def read_npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def header_of(arrays) -> dict:
    return json.loads(arrays[HEADER].tobytes().decode("utf-8"))


def write_with_header(path, arrays, header) -> None:
    arrays = dict(arrays)
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def saved(tmp_path):
    net = sample_net(np.float32)
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path


# --- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_predict_is_bit_identical(tmp_path, dtype):
    net = sample_net(dtype)
    X = data()
    net.fit(X, np.random.default_rng(2).dirichlet(np.ones(3), size=len(X)), loss=cr.MSE(),
            optimizer=cr.Adam(lr=0.01), epochs=2, batch_size=5, seed=0, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = cr.load(path)
    assert loaded.dtype == np.dtype(dtype)
    assert [type(a) for a in loaded.layers] == [type(b) for b in net.layers]
    for key, p in net.params.items():
        q = loaded.params[key]
        assert q.dtype == p.dtype and np.array_equal(q, p), key
    out, out_loaded = net.predict(X), loaded.predict(X)
    assert out_loaded.dtype == np.dtype(dtype)
    assert np.array_equal(out, out_loaded)


def test_layer_settings_and_frozen_flags_survive(saved):
    net, path = saved
    loaded = cr.load(path)
    assert [layer.frozen for layer in loaded.layers] == [layer.frozen for layer in net.layers]
    assert loaded.layers[0].frozen == {"bias"} and loaded.layers[7].frozen == {"weight", "bias"}
    assert loaded.layers[1].alpha == 0.2 and loaded.layers[4].alpha == 0.5
    assert loaded.layers[2].p == 0.3
    assert loaded.layers[3].use_bias is False and "bias" not in loaded.layers[3].params
    assert repr(loaded) == repr(net)


def test_loaded_frozen_parameters_stay_frozen_in_training(saved):
    _, path = saved
    loaded = cr.load(path)
    bias_before = loaded.layers[0].params["bias"].copy()
    last_before = [p.copy() for p in loaded.layers[7].params.values()]
    X = data()
    loaded.fit(X, np.full((len(X), 3), 1 / 3), loss="mse", optimizer=cr.SGD(lr=0.5), epochs=2, verbose=0)
    assert np.array_equal(loaded.layers[0].params["bias"], bias_before)
    for before, after in zip(last_before, loaded.layers[7].params.values(), strict=True):
        assert np.array_equal(before, after)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attached_standardizer_is_saved_and_applied(tmp_path, dtype):
    net = cr.Sequential(cr.Dense(4, 3, seed=0), cr.Tanh(), cr.Dense(3, 2, seed=1), dtype=dtype)
    net.scaler = cr.Standardizer()
    X = data()
    net.fit(X, X[:, :2] * 0.1, loss="mse", optimizer=cr.SGD(lr=0.1), epochs=2, verbose=0)
    assert net.scaler.is_fitted
    path = tmp_path / "scaled.npz"
    net.save(path)
    loaded = cr.load(path)
    assert isinstance(loaded.scaler, cr.Standardizer)
    X_new = data(seed=3)
    assert np.array_equal(loaded.predict(X_new), net.predict(X_new))
    # The scaler really is applied: the layers alone on raw input give something else.
    bare = X_new.astype(dtype)
    for layer in loaded.layers:
        bare = layer.forward(bare)
    assert not np.allclose(bare, loaded.predict(X_new))
    assert np.array_equal(loaded(X_new), loaded.predict(X_new))  # net(x) applies it too
    np.testing.assert_array_equal(loaded.scaler.transform(X_new), net.scaler.transform(X_new))


def test_saving_does_not_use_pickle(saved):
    _, path = saved
    arrays = read_npz(path)  # allow_pickle=False: would raise on any object array
    assert all(a.dtype != object for a in arrays.values())
    header = header_of(arrays)
    assert header["format"] == "chainrule" and isinstance(header["version"], int)


def test_loaded_network_is_independent_of_the_file(saved):
    net, path = saved
    loaded = cr.load(path)
    os.remove(path)
    X = data()
    assert np.array_equal(loaded.predict(X), net.predict(X))


# --- refusals -----------------------------------------------------------------------------------
def test_npz_with_a_pickled_object_array_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    arrays["payload"] = np.array([{"a": 1}, None], dtype=object)  # needs pickle to load
    bad = tmp_path / "pickled.npz"
    np.savez(bad, **arrays)
    with pytest.raises(cr.ChainruleError, match="pickle"):
        cr.load(bad)


def test_pickled_object_array_in_place_of_a_parameter_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    arrays["layers.0.weight"] = np.empty((4, 6), dtype=object)
    bad = tmp_path / "pickled_param.npz"
    np.savez(bad, **arrays)
    with pytest.raises(cr.ChainruleError, match="pickle"):
        cr.load(bad)


def test_pickled_object_header_is_refused(tmp_path):
    bad = tmp_path / "pickled_header.npz"
    np.savez(bad, **{HEADER: np.array([{"format": "chainrule"}], dtype=object)})
    with pytest.raises(cr.ChainruleError):
        cr.load(bad)


def test_a_file_that_is_not_a_zip_archive_is_refused(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"this is not a model\n" * 10)
    with pytest.raises(cr.ChainruleError, match="not a chainrule model file"):
        cr.load(bad)


def test_a_plain_npy_file_is_refused(tmp_path):
    bad = tmp_path / "array.npy"
    np.save(bad, np.arange(5.0))
    with pytest.raises(cr.ChainruleError):
        cr.load(bad)


def test_an_npz_without_the_chainrule_header_is_refused(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, weight=np.ones((2, 2)))
    with pytest.raises(cr.ChainruleError, match=HEADER):
        cr.load(bad)


def test_a_zip_that_is_not_an_npz_is_refused(tmp_path):
    bad = tmp_path / "archive.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(cr.ChainruleError):
        cr.load(bad)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(cr.ChainruleError, match="no such file"):
        cr.load(tmp_path / "nowhere.npz")


def test_a_header_that_is_not_json_is_refused(tmp_path):
    bad = tmp_path / "garbled.npz"
    np.savez(bad, **{HEADER: np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(cr.ChainruleError, match="JSON"):
        cr.load(bad)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("version", 3, "version 3"),
    ("version", None, "version"),
    ("format", "kerasish", "not a chainrule model"),
])
def test_a_wrong_format_or_version_is_refused(tmp_path, saved, field, value, match):
    _, good = saved
    arrays = read_npz(good)
    header = header_of(arrays)
    header[field] = value
    bad = tmp_path / "wrong.npz"
    write_with_header(bad, arrays, header)
    with pytest.raises(cr.ChainruleError, match=match):
        cr.load(bad)


def test_an_unknown_layer_type_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    header = header_of(arrays)
    header["layers"][1]["class"] = "Conv2DTranspose"
    bad = tmp_path / "unknown_layer.npz"
    write_with_header(bad, arrays, header)
    with pytest.raises(cr.ChainruleError, match="Conv2DTranspose"):
        cr.load(bad)


def test_a_parameter_of_the_wrong_shape_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    arrays["layers.0.weight"] = np.zeros((4, 7), dtype=np.float32)
    bad = tmp_path / "shape.npz"
    np.savez(bad, **arrays)
    with pytest.raises(cr.ChainruleError, match=r"layers\.0\.weight.*\(4, 6\)"):
        cr.load(bad)


def test_an_architecture_that_disagrees_with_the_arrays_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    header = header_of(arrays)
    header["layers"][0]["config"]["n_out"] = 7
    bad = tmp_path / "config.npz"
    write_with_header(bad, arrays, header)
    with pytest.raises(cr.ChainruleError, match="layers.0.weight"):
        cr.load(bad)


def test_a_missing_parameter_array_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    del arrays["layers.7.bias"]
    bad = tmp_path / "missing.npz"
    np.savez(bad, **arrays)
    with pytest.raises(cr.ChainruleError, match="layers.7.bias"):
        cr.load(bad)


def test_a_non_float_parameter_is_refused(tmp_path, saved):
    _, good = saved
    arrays = read_npz(good)
    arrays["layers.0.weight"] = np.zeros((4, 6), dtype=np.int64)
    bad = tmp_path / "ints.npz"
    np.savez(bad, **arrays)
    with pytest.raises(cr.ChainruleError, match="float"):
        cr.load(bad)


def test_refusals_are_file_format_errors_and_value_errors(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(cr.FileFormatError) as info:
        cr.load(bad)
    assert isinstance(info.value, ValueError)
    assert str(bad) in str(info.value)


# --- atomic writes ------------------------------------------------------------------------------
def test_a_save_that_fails_midway_leaves_the_old_file_loadable(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = sample_net(np.float32, seed=0)
    old.save(path)
    old_bytes = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half of a zip archive")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", broken_savez)
    new = sample_net(np.float32, seed=10)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()

    assert path.read_bytes() == old_bytes
    loaded = cr.load(path)
    X = data()
    assert np.array_equal(loaded.predict(X), old.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left over


def test_saving_over_an_existing_file_replaces_it(tmp_path):
    path = tmp_path / "model.npz"
    sample_net(np.float32, seed=0).save(path)
    new = sample_net(np.float32, seed=10)
    new.save(path)
    X = data()
    assert np.array_equal(cr.load(path).predict(X), new.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# --- save: where it cannot write -----------------------------------------------------------------
def test_saving_to_a_folder_or_into_a_missing_folder_says_what_to_do(tmp_path):
    net = sample_net(np.float32)
    with pytest.raises(cr.SaveError, match=rf"{tmp_path}: it is a folder; give a file path"):
        net.save(tmp_path)
    missing = tmp_path / "absent" / "model.npz"
    with pytest.raises(cr.SaveError, match=r"the folder .*absent does not exist; create it first"):
        net.save(missing)
    with pytest.raises(cr.ConfigError, match="NUL byte"):
        net.save(str(tmp_path / "a\0b.npz"))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_old_file_and_says_so(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "model.npz"
    sample_net(np.float32, seed=0).save(path)
    before = path.read_bytes()

    def full_disk(file, *args, **kwargs):
        file.write(b"PK\x03\x04 the start of an archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(cr.SaveError) as info:
        sample_net(np.float32, seed=10).save(path)
    message = str(info.value)
    assert str(path) in message and "No space left on device" in message
    assert "the file already at" in message and "was kept unchanged" in message
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    with pytest.raises(cr.SaveError, match="nothing was written"):
        sample_net(np.float32, seed=10).save(tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_saving_over_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "work").mkdir()
    target = tmp_path / "models" / "best.npz"
    sample_net(np.float32, seed=0).save(target)
    link = tmp_path / "work" / "current.npz"
    link.symlink_to(os.path.relpath(target, link.parent))
    new = sample_net(np.float32, seed=10)
    new.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link.parent)
    X = data()
    assert np.array_equal(cr.load(target).predict(X), new.predict(X))
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["current.npz"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.npz"]
    dangling = tmp_path / "work" / "next.npz"  # a link to a file not written yet: the file is created
    dangling.symlink_to(tmp_path / "models" / "next.npz")
    new.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "models" / "next.npz").is_file()
    loop = tmp_path / "work" / "loop.npz"
    loop.symlink_to(loop)
    with pytest.raises(cr.SaveError, match="loop"):
        new.save(loop)
    assert loop.is_symlink()


def test_running_statistics_inside_a_residual_survive_save_and_load(tmp_path):
    """A BatchNorm inside a Residual keeps its running mean and variance in the model file."""
    net = cr.Sequential(cr.Dense(3, 4, seed=0), cr.Residual(cr.BatchNorm(4), cr.Dense(4, 4, seed=1)),
                        cr.Dense(4, 1, seed=2), dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(16, 3))
    net.forward(x, training=True)          # one training pass moves the running statistics
    bn = net.layers[1].layers[0]
    assert not np.allclose(bn.buffers["running_mean"], 0)
    assert sorted(net.layers[1].buffers) == ["0.running_mean", "0.running_var"]
    net.save(tmp_path / "m.npz")
    back = cr.load(tmp_path / "m.npz")
    for k in ("running_mean", "running_var"):
        assert np.array_equal(back.layers[1].layers[0].buffers[k], bn.buffers[k])
    assert np.array_equal(back.predict(x), net.predict(x))

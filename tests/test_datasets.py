"""Tests of chainrule.datasets: the toy generators and the bundled digits.

Geometry is checked against the defining equations with the noise turned off; the
digits against published facts about the UCI test set (class sizes, the first image).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from chainrule.datasets import Dataset, circles, load_digits, moons, spirals, xor
from chainrule.errors import ConfigError

GENERATORS = [spirals, moons, circles]


def test_xor_truth_table():
    X, y = xor()
    assert X.dtype == np.float32 and X.shape == (4, 2)
    assert y.dtype == np.float32 and y.shape == (4, 1)
    expected = np.logical_xor(X[:, 0] > 0.5, X[:, 1] > 0.5).astype(np.float32)
    assert np.array_equal(y[:, 0], expected)
    assert sorted(map(tuple, X.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_shapes_dtypes_and_balance(make):
    X, y = make(n_samples=201, seed=0)
    assert X.shape == (201, 2) and X.dtype == np.float32
    assert y.shape == (201,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [101, 100]
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_seeding(make):
    X1, y1 = make(seed=3)
    X2, y2 = make(seed=3)
    X3, y3 = make(seed=4)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    Xg, _ = make(seed=np.random.default_rng(3))
    assert Xg.shape == X1.shape


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_rows_are_shuffled(make):
    _, y = make(seed=0)
    assert not np.array_equal(y, np.sort(y))


def test_spirals_many_classes_share_samples_evenly():
    X, y = spirals(n_samples=302, n_classes=4, seed=1)
    assert X.shape == (302, 2)
    assert np.bincount(y).tolist() == [76, 76, 75, 75]


def test_spirals_follow_their_equation_without_noise():
    n_classes = 3
    X, y = spirals(n_samples=300, n_classes=n_classes, noise=0.0, seed=0)
    X = X.astype(np.float64)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0.05 - 1e-6 and r.max() <= 1.0 + 1e-6
    # angle = 2*pi*c/K + 3*pi*r (mod 2*pi)
    residual = np.arctan2(X[:, 1], X[:, 0]) - 2 * np.pi * y / n_classes - 3 * np.pi * r
    wrapped = np.angle(np.exp(1j * residual))
    assert np.max(np.abs(wrapped)) < 1e-4


def test_spiral_noise_jitters_the_angle_but_keeps_the_radius():
    X0, _ = spirals(noise=0.0, seed=0)
    X1, _ = spirals(noise=0.5, seed=0)
    assert not np.allclose(X0, X1)
    r0 = np.sort(np.hypot(X0[:, 0], X0[:, 1]))
    r1 = np.sort(np.hypot(X1[:, 0], X1[:, 1]))
    np.testing.assert_allclose(r0, r1, atol=1e-6)


def test_moons_lie_on_their_half_circles_without_noise():
    X, y = moons(n_samples=100, noise=0.0, seed=0)
    X = X.astype(np.float64)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)
    assert upper[:, 1].min() >= -1e-6
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    assert lower[:, 1].max() <= 0.5 + 1e-6


def test_circles_radii_without_noise():
    X, y = circles(n_samples=100, noise=0.0, factor=0.3, seed=0)
    r = np.hypot(X[:, 0].astype(np.float64), X[:, 1].astype(np.float64))
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)


def test_noise_spreads_points_off_the_curve():
    X, y = circles(n_samples=2000, noise=0.05, seed=0)
    r = np.hypot(X[:, 0].astype(np.float64), X[:, 1].astype(np.float64))
    # radial deviation of 2-D Gaussian noise on a circle has std close to 0.05
    assert 0.04 < np.std(r[y == 0] - 1.0) < 0.06


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: spirals(n_classes=1), "n_classes must be an int >= 2"),
        (lambda: spirals(n_samples=2, n_classes=3), "n_samples must be an int >= 3"),
        (lambda: moons(n_samples=1), "n_samples must be an int >= 2"),
        (lambda: moons(noise=-0.1), "noise must be a finite number >= 0"),
        (lambda: circles(noise=np.nan), "noise must be a finite number >= 0"),
        (lambda: circles(factor=1.0), r"factor must be a number in \(0, 1\)"),
        (lambda: circles(seed="x"), "seed"),
    ],
)
def test_generators_reject_bad_arguments(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# --- digits ----------------------------------------------------------------------------

def test_digits_shape_dtype_and_values():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(X, np.round(X))
    assert set(np.unique(y).tolist()) == set(range(10))


def test_digits_class_counts_of_the_uci_test_set():
    _, y = load_digits()
    counts = np.bincount(y).tolist()
    assert counts == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert sum(counts) == 1797


def test_digits_first_image_is_the_familiar_zero():
    X, y = load_digits()
    assert y[:10].tolist() == list(range(10))
    first = [
        [0, 0, 5, 13, 9, 1, 0, 0],
        [0, 0, 13, 15, 10, 15, 5, 0],
        [0, 3, 15, 2, 0, 11, 8, 0],
        [0, 4, 12, 0, 0, 8, 8, 0],
        [0, 5, 8, 0, 0, 9, 8, 0],
        [0, 4, 11, 0, 1, 12, 7, 0],
        [0, 2, 14, 5, 10, 12, 0, 0],
        [0, 0, 6, 13, 10, 0, 0, 0],
    ]
    assert X[0].reshape(8, 8).astype(int).tolist() == first
    assert int(X.sum(dtype=np.int64)) == 561718


def test_digits_as_dataset_and_fresh_arrays():
    ds = load_digits(return_X_y=False)
    assert isinstance(ds, Dataset)
    assert ds.data.shape == (1797, 64) and ds.target.shape == (1797,)
    assert len(ds.feature_names) == 64 and ds.feature_names[9] == "pixel_1_1"
    assert ds.target_names.tolist() == list(range(10))
    assert "CC BY 4.0" in ds.description
    ds.data[0, 0] = 99.0
    X, _ = load_digits()
    assert X[0, 0] == 0.0


def test_digits_file_is_small_uint8_and_pickle_free():
    folder = resources.files("chainrule") / "_data"
    with (folder / "digits.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["X", "y"]
        assert npz["X"].dtype == np.uint8 and npz["y"].dtype == np.uint8
    licence = (folder / "DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "10.24432/C50P49" in licence

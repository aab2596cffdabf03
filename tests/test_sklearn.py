"""chainrule.sklearn: scikit-learn's estimator checks, scikit-learn's MLP as the reference, pipelines."""

from __future__ import annotations

import importlib.util
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer")

#: Checks of parametrize_with_checks expected to fail, with the reason. None today: both
#: estimators pass every check scikit-learn runs. (scikit-learn skips by itself the pandas
#: checks when pandas is absent and the array-API checks without SCIPY_ARRAY_API=1, both of
#: which pass when enabled, and check_decision_function for a classifier without one.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([MLPClassifier(), MLPRegressor()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


# --- scikit-learn's MLP as the reference -----------------------------------------------------------
@pytest.mark.parametrize("settings", [
    dict(solver="sgd", momentum=0.0, shuffle=False),
    dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, alpha=1e-2, batch_size=50),
    dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, activation="tanh", batch_size=64),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, momentum=0.0, activation="logistic"),
])
def test_sgd_trajectory_equals_scikit_learns(digits, settings):
    """Same initial weights, batches and update rule: the same numbers to float64 rounding.

    (With momentum and a learning rate that changes, the momentum buffer follows torch.optim's
    convention, b ← μb + g, θ ← θ − lr·b, where scikit-learn keeps lr inside the buffer.)
    """
    X_train, _, y_train, _ = digits
    kw = dict(hidden_layer_sizes=(20, 10), max_iter=4, random_state=5, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = MLPClassifier(**kw).fit(X_train, y_train), SkMLPClassifier(**kw).fit(X_train, y_train)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_adam_regression_follows_scikit_learn(digits):
    """Adam places ε as torch does (scikit-learn: after the bias correction): close, not equal."""
    X_train, X_test, y_train, _ = digits
    y = X_train[:, 20] * 2 - X_train[:, 30]
    kw = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0, n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = MLPRegressor(**kw).fit(X_train, y), SkMLPRegressor(**kw).fit(X_train, y)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-3)
    assert np.abs(ours.predict(X_test) - ref.predict(X_test)).mean() < 1e-3


COMPARISON = dict(hidden_layer_sizes=(64,), solver="adam", learning_rate_init=1e-3, batch_size=32, max_iter=100,
                  n_iter_no_change=1000)


def compare_with_scikit_learn(seeds) -> dict[str, tuple[float, float]]:
    """Mean test accuracy (R² for diabetes) of scikit-learn's MLP and ours on the bundled sets."""
    results = {}
    for name in ("digits", "iris", "breast_cancer", "wine", "diabetes"):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        regression = name == "diabetes"
        scores = {"sklearn": [], "chainrule": []}
        for seed in seeds:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.25, random_state=seed, stratify=None if regression else y)
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
            mean, std = y_train.mean(), y_train.std()
            for lib, cls in (("sklearn", SkMLPRegressor if regression else SkMLPClassifier),
                             ("chainrule", MLPRegressor if regression else MLPClassifier)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = cls(random_state=seed, **COMPARISON)
                    if regression:  # standardized target, R² in the target's units
                        model.fit(X_train, (y_train - mean) / std)
                        pred = model.predict(X_test) * std + mean
                        score = 1 - ((y_test - pred) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
                    else:
                        score = model.fit(X_train, y_train).score(X_test, y_test)
                scores[lib].append(score)
        results[name] = (float(np.mean(scores["sklearn"])), float(np.mean(scores["chainrule"])))
    return results


def check_comparison(results):
    for name, (theirs, ours) in results.items():
        if name == "diabetes":
            assert abs(ours - theirs) <= 0.02, (name, theirs, ours)
        else:
            assert ours >= theirs - 0.01, (name, theirs, ours)


def test_accuracy_matches_scikit_learn_one_seed():
    check_comparison(compare_with_scikit_learn(seeds=[0]))


@pytest.mark.slow
def test_accuracy_matches_scikit_learn_five_seeds():
    check_comparison(compare_with_scikit_learn(seeds=range(5)))


# --- scikit-learn tooling --------------------------------------------------------------------------
def test_pipeline_and_grid_search_with_two_processes():
    X, y = datasets.load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=100, learning_rate_init=0.01, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)],
                               "mlpclassifier__dropout": [0.0, 0.1]}, cv=3, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.score(X, y) > 0.85


def test_pickle_round_trip_without_forward_caches(digits):
    X_train, X_test, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X_train, y_train)
    model.predict(X_test)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.net_.layers[0]._input is None and model.net_.layers[0]._input is not None
    np.testing.assert_array_equal(clone.predict_proba(X_test), model.predict_proba(X_test))
    clone.partial_fit(X_train, y_train)  # the optimizer state travelled too
    assert clone.n_iter_ == model.n_iter_ + 1


def test_saved_network_is_the_npz_format(tmp_path, digits):
    X_train, X_test, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X_train, y_train)
    model.net_.save(tmp_path / "net.npz")
    net = cr.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(net.predict(X_test), model.net_.predict(X_test))
    assert model.classes_[net.predict(X_test).argmax(axis=1)].tolist() == model.predict(X_test).tolist()


# --- what scikit-learn's MLP lacks -------------------------------------------------------------------
def test_user_validation_set_callbacks_and_logs(digits):
    X_train, X_test, y_train, y_test = digits
    seen = []
    stop = cr.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0, learning_rate_init=0.01,
                          callbacks=[cr.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(dict(logs))), stop])
    model.fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.n_iter_ < 200 and stop.stopped_epoch is not None
    assert len(model.validation_scores_) == model.n_iter_ == len(seen)
    assert set(seen[0]) == {"loss", "val_loss", "val_accuracy"}
    assert seen[-1]["val_accuracy"] == model.validation_scores_[-1]
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.best_loss_ == min(model.loss_curve_)


def test_early_stopping_on_user_validation_set_restores_best(digits):
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3, random_state=0,
                          max_iter=300).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.n_iter_ < 300 and model.best_loss_ is None
    assert model.score(X_test, y_test) == model.best_validation_score_ == max(model.validation_scores_)


def test_dropout_activations_and_float32(digits):
    X_train, X_test, y_train, y_test = digits
    for activation in ("elu", "leaky_relu", "softplus", "sigmoid", cr.Tanh):
        model = MLPClassifier(hidden_layer_sizes=(32,), activation=activation, dropout=0.2, max_iter=30,
                              random_state=0, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
        assert model.net_.dtype == np.float32 and model.coefs_[0].dtype == np.float32
        assert any(isinstance(layer, cr.Dropout) for layer in model.net_.layers)
        assert model.score(X_test, y_test) > 0.85, activation
    assert MLPClassifier(max_iter=1).fit(X_train.astype(np.float32), y_train).net_.dtype == np.float32


def test_partial_fit_epoch_by_epoch(digits):
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        model.partial_fit(X_train, y_train)
    for _ in range(15):
        model.partial_fit(X_train, y_train, classes=np.arange(10))
    assert model.n_iter_ == 15 and len(model.loss_curve_) == 15
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.score(X_test, y_test) > 0.9
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        model.partial_fit(X_train[:5], np.full(5, 11))


def test_sample_weight_shifts_the_decision():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] > 0).astype(int)
    flipped = y.copy()
    flipped[:100] = 1 - flipped[:100]
    kw = dict(hidden_layer_sizes=(8,), max_iter=150, random_state=0, learning_rate_init=0.01)
    weights = np.ones(400)
    weights[:100] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clean = MLPClassifier(**kw).fit(X, flipped, sample_weight=weights)
        noisy = MLPClassifier(**kw).fit(X, flipped)
    assert clean.score(X, y) > 0.97 > noisy.score(X, y)


def test_multilabel_and_multioutput():
    X, Y = datasets.make_multilabel_classification(n_samples=200, n_classes=3, random_state=0)
    X = StandardScaler().fit_transform(X)
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0).fit(X, Y)
    assert model.predict(X).shape == (200, 3) and model.predict_proba(X).shape == (200, 3)
    assert model.out_activation_ == "logistic" and model.score(X, Y) > 0.5
    Xr, Yr = datasets.make_regression(n_samples=200, n_features=5, n_targets=2, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, random_state=0).fit(Xr, Yr / 100)
    assert reg.predict(Xr).shape == (200, 2) and reg.score(Xr, Yr / 100) > 0.9


def test_binary_probabilities_and_attributes(digits):
    X_train, X_test, y_train, y_test = digits
    keep = np.isin(y_train, [3, 8])
    model = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train[keep], np.where(y_train[keep] == 3, "three", "eight"))
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and np.allclose(proba.sum(axis=1), 1)
    assert model.classes_.tolist() == ["eight", "three"] and model.n_outputs_ == 1
    assert model.predict(X_test).tolist() == model.classes_[proba.argmax(axis=1)].tolist()
    assert [c.shape for c in model.coefs_] == [(64, 16), (16, 8), (8, 1)] and model.n_layers_ == 4
    assert model.coefs_[0] is model.net_.layers[0].params["weight"]
    assert model.n_features_in_ == 64 and model.t_ == model.n_iter_ * keep.sum()


@pytest.mark.parametrize("params, message", [
    (dict(solver="newton"), "solver"), (dict(solver="lbfgs", dropout=0.5), "lbfgs"),
    (dict(max_fun=0), "max_fun"), (dict(activation="swish"), "activation"), (dict(dropout=1.0), "dropout"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"), (dict(batch_size=0), "batch_size"),
    (dict(callbacks=[print]), "callbacks"), (dict(dtype=np.int32), "dtype"),
])
def test_parameters_are_checked_at_fit(params, message):
    X, y = datasets.load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**params).fit(X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("name", ["wine", "digits"])
def test_accuracy_matches_scikit_learn_for_each_solver(name, solver):
    """Test accuracy on a stratified 75/25 split, both estimators with their defaults but the hidden
    layer (and max_iter for lbfgs, as scikit-learn's own examples raise it): within one point."""
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    kw = dict(solver=solver, hidden_layer_sizes=(32,), random_state=0, max_iter=500 if solver == "lbfgs" else 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkMLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
        ours = MLPClassifier(**kw).fit(X_train, y_train).score(X_test, y_test)
    assert ours >= theirs - 0.01 and ours > 0.9, (theirs, ours)


# --- solver="lbfgs" --------------------------------------------------------------------------------
@pytest.mark.parametrize("Ours, Ref, target", [
    (MLPClassifier, SkMLPClassifier, "multiclass"), (MLPClassifier, SkMLPClassifier, "binary"),
    (MLPRegressor, SkMLPRegressor, "regression"),
])
def test_lbfgs_follows_scikit_learns_objective(digits, Ours, Ref, target):
    """Same initial weights and the same full-batch objective (loss + α/2n·Σ‖W‖², sample weights
    included): scipy's L-BFGS-B takes the same iterations as in scikit-learn's lbfgs solver."""
    X_train, _, y_train, _ = digits
    X, y = X_train[:300], y_train[:300]
    y = {"multiclass": y, "binary": y % 2, "regression": y / 9.0}[target]
    sw = np.linspace(0.5, 1.5, len(X))
    kw = dict(solver="lbfgs", hidden_layer_sizes=(12,), alpha=1e-3, max_iter=6, random_state=3)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        ours = Ours(**kw).fit(X, y, sample_weight=sw)
    with pytest.warns(ConvergenceWarning):
        ref = Ref(**kw).fit(X, y, sample_weight=sw)
    assert ours.n_iter_ == ref.n_iter_ == 6
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_lbfgs_converges_within_max_iter_without_warning():
    X, y = datasets.load_iris(return_X_y=True)
    model = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=5000, tol=1e-3, random_state=0)
    model.fit(StandardScaler().fit_transform(X), y)  # filterwarnings=error: no ConvergenceWarning
    assert model.n_iter_ < 5000 and len(model.loss_curve_) == model.n_iter_
    assert model.loss_ == pytest.approx(model.loss_curve_[-1]) and not hasattr(model, "partial_fit")


# --- sparse input ----------------------------------------------------------------------------------
def test_dense_layer_takes_sparse_input_as_the_dense_array():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)) * (rng.random((7, 5)) < 0.3)
    delta = rng.normal(size=(7, 3))
    for to_sparse in (sparse.csr_matrix, sparse.csc_array):
        dense, sp = (cr.Dense(5, 3, seed=1, dtype=np.float64) for _ in range(2))
        z = sp.forward(to_sparse(x))
        assert type(z) is np.ndarray
        np.testing.assert_allclose(z, x @ dense.params["weight"] + dense.params["bias"], rtol=1e-12)
        sp.backward_params(delta)
        np.testing.assert_allclose(sp.grads["weight"], x.T @ delta, rtol=1e-12)  # Xᵀ·δ by hand
        np.testing.assert_allclose(sp.grads["bias"], delta.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("Model, solver", [(MLPClassifier, "adam"), (MLPRegressor, "sgd"), (MLPClassifier, "lbfgs")])
def test_sparse_X_trains_and_predicts_as_the_dense_X(digits, fmt, Model, solver):
    sparse = pytest.importorskip("scipy.sparse")
    X_train, X_test, y_train, _ = digits
    X, y = np.where(np.abs(X_train[:200]) > 0.8, X_train[:200], 0.0), y_train[:200]
    kw = dict(solver=solver, hidden_layer_sizes=(10,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = Model(**kw).fit(X, y)
        sp = Model(**kw).fit(sparse.csr_matrix(X).asformat(fmt), y)
    assert sparse.issparse(sp.net_.layers[0]._input)  # the first Dense saw the sparse matrix itself
    for a, b in zip(sp.coefs_ + sp.intercepts_, dense.coefs_ + dense.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    X_sparse = sparse.csr_matrix(X_test).asformat(fmt)
    np.testing.assert_allclose(sp._output(X_sparse), dense._output(X_test), rtol=1e-6, atol=1e-12)
    if Model is MLPClassifier:
        assert np.array_equal(sp.predict(X_sparse), dense.predict(X_test))
        np.testing.assert_allclose(sp.predict_proba(X_sparse), dense.predict_proba(X_test), rtol=1e-6)
    else:
        np.testing.assert_allclose(sp.predict(X_sparse), dense.predict(X_test), rtol=1e-6)


# --- DataFrames ------------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed")
@pytest.mark.parametrize("own_val", [False, True])
def test_dataframe_validation_set_warns_of_no_feature_names(own_val):
    import pandas as pd

    X, y = datasets.load_iris(return_X_y=True)
    _fit_named_columns(pd.DataFrame(StandardScaler().fit_transform(X), columns=["a", "b", "c", "d"]), y, own_val)


def _fit_named_columns(X, y, own_val):
    """Fit on columns named a-d, with a validation set of one's own or split off: no warning may come."""
    kw = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # any other warning fails (filterwarnings=error)
        if own_val:
            model = MLPClassifier(**kw).fit(X[::2], y[::2], X_val=X[1::2], y_val=y[1::2])
        else:
            model = MLPClassifier(early_stopping=True, **kw).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_ and list(model.feature_names_in_) == list("abcd")


class _NamedColumns(np.ndarray):
    """An array that scikit-learn's validation takes for a data frame with columns a, b, c, d."""


@pytest.mark.parametrize("own_val", [False, True])
def test_named_columns_validation_set_warns_of_no_feature_names(monkeypatch, own_val):
    """The DataFrame case without pandas: scikit-learn's feature-name reader (private, so patched
    here) gives _NamedColumns arrays column names, as it would a DataFrame's."""
    from sklearn.utils import validation

    read = getattr(validation, "_get_feature_names", None)
    if read is None:
        pytest.skip("this scikit-learn reads feature names elsewhere")
    monkeypatch.setattr(validation, "_get_feature_names", lambda X: np.array(list("abcd"), dtype=object)
                        if isinstance(X, _NamedColumns) else read(X))
    X, y = datasets.load_iris(return_X_y=True)
    _fit_named_columns(StandardScaler().fit_transform(X).view(_NamedColumns), y, own_val)


# --- MLPRegressor(loss="poisson") ------------------------------------------------------------------
def test_poisson_loss_value_and_gradient():
    rng = np.random.default_rng(0)
    z, t = rng.normal(size=(6, 2)), rng.poisson(2.0, size=(6, 2)).astype(np.float64)
    mu = np.exp(z)
    t_log_t = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0.0)
    by_hand = (t_log_t - t * np.log(mu) - t + mu).mean()  # half the Poisson deviance, per element
    loss = cr.Poisson()
    value, grad = loss.value_and_grad(z, t)
    assert value == pytest.approx(by_hand, rel=1e-12)
    h, numeric = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        numeric[idx] = (loss.value(zp, t) - loss.value(zm, t)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_poisson_regressor_follows_scikit_learn(digits):
    X_train, X_test, y_train, _ = digits
    X, y = X_train[:300], (y_train[:300] % 4).astype(np.float64)  # counts
    kw = dict(loss="poisson", solver="sgd", hidden_layer_sizes=(10,), learning_rate_init=0.01, max_iter=3,
              random_state=2, momentum=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = MLPRegressor(**kw).fit(X, y), SkMLPRegressor(**kw).fit(X, y)
    assert ours.out_activation_ == ref.out_activation_ == "exp"
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict(X_test), ref.predict(X_test), rtol=1e-7)
    assert (ours.predict(X_test) > 0).all()
    with pytest.raises(ValueError, match="poisson.*>= 0"):
        MLPRegressor(loss="poisson").fit(X, -y)


# --- dtypes, divergence, assigned weights -----------------------------------------------------------
def test_float32_model_predicts_float32(digits):
    X_train, X_test, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2).fit(X_train.astype(np.float32), y_train)
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2).fit(X_train.astype(np.float32), y_train)
    assert reg.predict(X_test.astype(np.float32)).dtype == np.float32
    assert reg.predict(X_test).dtype == np.float32  # the model's dtype, as scikit-learn's
    assert clf.predict_proba(X_test).dtype == np.float32


def test_diverging_fit_with_early_stopping_records_nan_and_keeps_the_best_weights():
    X, y = datasets.load_iris(return_X_y=True)
    model = MLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1,
                         max_iter=20, early_stopping=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="the loss became .* best validation score"):
        model.fit(X, y)
    assert np.isnan(model.validation_scores_[-1]) and isinstance(model.validation_scores_[-1], float)
    assert len(model.validation_scores_) == model.n_iter_ < 20
    assert all(np.isfinite(w).all() for w in model.coefs_ + model.intercepts_)
    assert np.isfinite(model.predict(X)).all()


def test_assigned_coefs_and_intercepts_are_the_networks():
    X, y = datasets.load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(X, y)
    rng = np.random.default_rng(1)
    W1, b1, W2, b2 = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(3, 1)), rng.normal(size=1)
    model.coefs_ = [W1, np.zeros((3, 1))]
    model.coefs_[1] = W2  # item assignment writes through too
    model.intercepts_ = [b1, b2]
    by_hand = (np.maximum(X @ W1 + b1, 0) @ W2 + b2)[:, 0]
    np.testing.assert_allclose(model.predict(X), by_hand, rtol=1e-12)
    with pytest.raises(cr.ConfigError, match=r"coefs_\[1\] \(the weight of Dense layer 2\) must have shape"
                                             r" \(3, 1\), got shape \(3, 2\)"):
        model.coefs_ = [W1, np.zeros((3, 2))]
    with pytest.raises(cr.ConfigError, match=r"intercepts_ must be a list of 2 arrays"):
        model.intercepts_ = [b1]
    np.testing.assert_allclose(model.coefs_[0], W1)  # a refused assignment changes nothing


def test_probabilities_keep_their_tails():
    """σ(−40) = 1/(1 + e⁴⁰) ≈ 4.2e−18 is a probability, not 0: its log is −40, not −inf."""
    X, y = np.array([[1.0], [0.0]]), np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(1,), activation="identity", max_iter=1).fit(X, y)
    model.coefs_ = [np.ones((1, 1)), np.ones((1, 1))]
    model.intercepts_ = [np.zeros(1), np.array([-40.0])]  # logit −39 for x = 1, −40 for x = 0
    proba = model.predict_proba(np.array([[0.0]]))
    assert proba[0, 1] == pytest.approx(1 / (1 + np.exp(40.0)), rel=1e-12)
    assert model.predict_log_proba(np.array([[0.0]]))[0, 1] == pytest.approx(-40.0 - np.log1p(np.exp(-40.0)))


def test_weights_assigned_before_fit_start_a_warm_started_fit():
    X, y = datasets.load_iris(return_X_y=True)
    rng = np.random.default_rng(2)
    W = [rng.normal(size=(4, 3)), rng.normal(size=(3, 3))]
    b = [rng.normal(size=3), rng.normal(size=3)]
    model = MLPClassifier(hidden_layer_sizes=(3,), solver="sgd", learning_rate_init=1e-12, momentum=0.0,
                          max_iter=1, warm_start=True, alpha=0.0)
    model.coefs_, model.intercepts_ = W, b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    for got, want in zip(model.coefs_ + model.intercepts_, W + b, strict=True):  # moved by ~1e-12 only
        np.testing.assert_allclose(got, want, rtol=1e-6)
    wrong = MLPClassifier(hidden_layer_sizes=(3,), warm_start=True)
    wrong.coefs_ = [W[0][:3], W[1]]
    wrong.intercepts_ = b
    with pytest.raises(cr.ConfigError, match=r"coefs_\[0\] \(the weight of Dense layer 1\) must have shape \(4, 3\)"):
        wrong.fit(X, y)


def test_one_class_predicts_it_with_probability_one():
    """y with a single class fits (as scikit-learn's MLP does); predict gives that class and
    predict_proba one column of ones, one per class in classes_."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, np.array(["cat"] * 12))
    assert model.classes_.tolist() == ["cat"]
    Xt = rng.normal(size=(5, 3))
    assert model.predict(Xt).tolist() == ["cat"] * 5
    assert np.array_equal(model.predict_proba(Xt), np.ones((5, 1)))
    assert model.score(Xt, ["cat"] * 5) == 1.0
    with pytest.raises(ValueError, match="not in `self.classes_`"):  # a class given to partial_fit but not y's
        MLPClassifier(solver="sgd").partial_fit(X[:2], [1, 0], classes=[2])


def test_early_stopping_split_is_scikit_learns_and_its_error_names_the_users_classes(monkeypatch):
    """Early stopping's split for two classes is stratified as scikit-learn's (on y == classes_[-1]):
    the same random_state holds out the same rows. A class too small to split is named as
    scikit-learn names it and as the user wrote it."""
    import sklearn.neural_network._multilayer_perceptron as sk_mlp

    import chainrule.sklearn as cr_sklearn

    held_out = {}

    def recording(name, split):
        def wrapped(*arrays, **kwargs):
            parts = split(*arrays, **kwargs)
            held_out[name] = parts[1]  # the validation rows of X
            return parts
        return wrapped

    monkeypatch.setattr(cr_sklearn, "train_test_split", recording("ours", cr_sklearn.train_test_split))
    monkeypatch.setattr(sk_mlp, "train_test_split", recording("ref", sk_mlp.train_test_split))
    X, y = datasets.load_breast_cancer(return_X_y=True)
    binary = StandardScaler().fit_transform(X)[:200], np.where(y[:200] == 1, "benign", "malignant")
    X_iris, y_iris = datasets.load_iris(return_X_y=True)
    y_iris[0] = 3  # a fourth class of one sample: scikit-learn does not stratify more than two classes
    for X, labels in (binary, (X_iris, y_iris)):
        for Model in (MLPClassifier, SkMLPClassifier):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                Model(early_stopping=True, random_state=3, max_iter=1, hidden_layer_sizes=(3,)).fit(X, labels)
        assert held_out["ours"].shape == (round(0.1 * len(X)), X.shape[1])
        assert np.array_equal(held_out["ours"], held_out["ref"])
    with pytest.raises(ValueError, match=r"\['True'\].*'True' is class 'b', 'False' class 'a'"):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], ["a", "a", "a", "b"])

"""chainrule.sklearn: scikit-learn's estimator checks, scikit-learn's MLP as the reference, pipelines."""

from __future__ import annotations

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

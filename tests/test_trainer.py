"""ModelTrainer's API end to end (seed 000): the seed's calls, scikit-learn's tools (clone, pipelines, grid search),
per-epoch JSON lines in mlkit's own log file, early stopping, the model store round trip, and the errors a user
meets. Real data: iris and the diabetes study shipped with scikit-learn, the digits through mlkit.vision."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlkit import store
from mlkit.core import ConfigError, DataError, NotFittedError, setup_logging
from mlkit.search import grid_search
from mlkit.trainer import ModelTrainer


@pytest.fixture(scope="module")
def iris():
    d = load_iris(as_frame=True)
    X = pd.DataFrame(StandardScaler().fit_transform(d.data), columns=d.data.columns)
    return X, d.target.map(dict(enumerate(d.target_names)))


def seed_net(**kw):
    "The seed's calls, verbatim."
    trainer = ModelTrainer(model_type="neural_network", random_state=0, learning_rate=0.01, batch_size=16, **kw)
    trainer.add_layer("dense", units=64, activation="relu")
    trainer.add_layer("dense", units=32, activation="relu")
    trainer.add_output_layer("softmax", num_classes=3)
    trainer.compile_model(optimizer="adam", loss="categorical_crossentropy")
    return trainer


def test_seed_example_trains_and_logs_json_epochs(iris, tmp_path):
    X, y = iris
    setup_logging(log_dir=tmp_path, console=False)
    try:
        t = seed_net(max_epochs=15, early_stopping=False, verbose=True).train(X, y, X_val=X.iloc[::5],
                                                                              y_val=y.iloc[::5])
    finally:
        logging.getLogger("mlkit").handlers.clear()
    recs = [json.loads(line) for line in (tmp_path / "mlkit.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r.get("event") == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, 16))
    assert epochs[-1]["loss"] < epochs[0]["loss"] and all(0 <= r["val_score"] <= 1 for r in epochs)
    assert list(t.history_.columns) == ["epoch", "loss", "val_loss", "val_score", "seconds"] and len(t.history_) == 15
    assert t.score(X, y) > 0.9


def test_early_stopping_stops_and_restores_the_best_epoch(iris):
    X, y = iris
    t = seed_net(max_epochs=500, early_stopping=True, patience=5).fit(X, y)
    h = t.history_
    assert t.stopped_early_ and len(h) < 500
    assert t.best_epoch_ == int(h.loc[h.val_loss.idxmin(), "epoch"]) and len(h) == t.best_epoch_ + 5


def test_sklearn_contract(iris):
    X, y = iris
    t = seed_net(max_epochs=20)
    c = clone(t)
    assert c.get_params() == t.get_params() and c.layers is not t.layers
    c.set_params(alpha=0.01, layers=({"type": "dense", "units": 8, "activation": "tanh"},))
    assert c.fit(X, y).backend_.activation == "tanh" and c.backend_.hidden_layer_sizes == (8,)
    forest = ModelTrainer(model_type="random_forest", n_estimators=30, random_state=0)
    s = cross_val_score(make_pipeline(StandardScaler(), forest), X, y, cv=3)
    assert s.mean() > 0.85
    with pytest.raises(NotFittedError, match="not fitted"):
        t.predict(X)


def test_grid_search_over_the_trainer(iris, tmp_path):
    X, y = iris
    res = grid_search(seed_net(max_epochs=30, early_stopping=False), {"alpha": [1e-4, 1.0], "learning_rate": [0.01]},
                      X, y, n_splits=3, n_jobs=1, save_as="iris-net", home=tmp_path)
    assert len(res.results) == 2 and res.results["rank"].tolist() == [1, 2]
    model, card, tag = store.load_model("iris-net:latest", home=tmp_path)
    assert tag == res.tag and card["model_class"] == "mlkit.trainer.ModelTrainer"
    assert card["extra"]["layers"][0] == {"type": "dense", "units": 64, "activation": "relu"}
    np.testing.assert_array_equal(model.predict(X), res.best_estimator.predict(X))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['units'\].*valid parameters"):
        grid_search(seed_net(), {"units": [8, 16]}, X, y)


def test_other_model_types_through_the_same_object(iris):
    X, y = iris
    from sklearn.datasets import load_diabetes
    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    assert ModelTrainer(model_type="linear").fit(Xd[:350], yd[:350]).evaluate(Xd[350:], yd[350:]).metrics["r2"] > 0.3
    assert ModelTrainer(model_type="logistic").fit(X, y).score(X, y) > 0.9
    km = ModelTrainer(model_type="kmeans", n_clusters=3, random_state=0).fit(X)
    assert km.evaluate(X, y).metrics["adjusted_rand"] > 0.4


@pytest.mark.parametrize("build, match", [
    (lambda: ModelTrainer().add_layer("conv2d", units=8), "dense layers only"),
    (lambda: ModelTrainer().add_layer("dense", units=8, activation="gelu"), "valid activations"),
    (lambda: ModelTrainer().add_output_layer("softmax").compile_model(loss="binary_crossentropy"),
     "contradicts the softmax output"),
    (lambda: ModelTrainer().add_output_layer("sigmoid", num_classes=3), "sigmoid output separates two classes"),
    (lambda: ModelTrainer(model_type="kmeans").add_output_layer("softmax"), "neural_network' only"),
    (lambda: ModelTrainer(model_type="tree")._config(), "valid model types"),
])
def test_config_errors(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_data_errors(iris):
    X, y = iris
    with pytest.raises(DataError, match=r"num_classes=10 but y has 3 classes"):
        ModelTrainer(max_epochs=2).add_layer("dense", 4).add_output_layer("softmax", num_classes=10).fit(X, y)
    mixed = ModelTrainer().add_layer("dense", 8, "relu").add_layer("dense", 8, "tanh").add_output_layer("softmax")
    with pytest.raises(ConfigError, match="one activation to every hidden layer"):
        mixed.fit(X, y)
    with pytest.raises(ValueError, match="a regression target must be numeric"):
        ModelTrainer(model_type="linear").fit(X, y)

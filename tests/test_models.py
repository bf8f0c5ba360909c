"""AutoGluon wrapper: fit, save, load on real data (kept quick: one LightGBM model, short time limit)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlkit
from mlkit.core import NotFittedError
from mlkit.models import AutoGluonModel, load_model, make_card, make_model


@pytest.fixture(scope="module")
def diabetes():
    df = pd.read_parquet(Path(mlkit.__file__).parent / "datasets_data" / "diabetes.parquet")
    X = df.drop(columns="target")
    y = (df["target"] > df["target"].iloc[:342].median()).map({True: "high", False: "low"}).rename("progression")
    return X.iloc[:342], X.iloc[342:], y.iloc[:342], y.iloc[342:]


def test_autogluon_fit_save_load_round_trip(diabetes, tmp_path):
    X_tr, X_te, y_tr, y_te = diabetes
    with pytest.raises(NotFittedError, match="not fitted yet"):
        AutoGluonModel().predict(X_te)
    model = make_model("autogluon", time_limit=20, hyperparameters={"GBM": {}}, eval_metric="log_loss").fit(X_tr, y_tr)
    assert isinstance(model, AutoGluonModel)
    assert model.classes_.tolist() == ["high", "low"]
    assert model.feature_names_in_.tolist() == list(X_tr.columns)

    proba = model.predict_proba(X_te)
    assert proba.shape == (100, 2)
    assert ((proba >= 0) & (proba <= 1)).all() and np.allclose(proba.sum(axis=1), 1)
    # column j is classes_[j]: the "high" column must be larger, on average, for rows that are really "high"
    assert proba[y_te.to_numpy() == "high", 0].mean() > proba[y_te.to_numpy() == "low", 0].mean()
    pred = model.predict(X_te)
    assert set(pred) <= {"high", "low"}
    baseline = max((y_te == c).mean() for c in ("high", "low"))
    assert (pred == y_te.to_numpy()).mean() > baseline

    with pytest.raises(ValueError, match=r"missing \['bmi'\]"):
        model.predict(X_te.drop(columns="bmi"))

    card = make_card(model, X_tr, y_tr, metrics={"accuracy": float((pred == y_te.to_numpy()).mean())})
    out = model.save(tmp_path / "ag", card)
    assert sorted(p.name for p in out.iterdir()) == ["autogluon", "model.joblib", "model_card.json"]

    loaded = load_model(out)
    assert isinstance(loaded, AutoGluonModel)
    np.testing.assert_array_equal(loaded.predict_proba(X_te), proba)
    np.testing.assert_array_equal(loaded.predict(X_te), pred)
    assert loaded.card_ == card
    assert loaded.card_.model == "autogluon" and loaded.card_.n_train == 342
    assert loaded.card_.params["hyperparameters"] == {"GBM": {}}
    assert loaded.card_.versions["autogluon.tabular"] is not None
    assert loaded.card_.target["counts"] == {k: int(v) for k, v in y_tr.value_counts().sort_index().items()}

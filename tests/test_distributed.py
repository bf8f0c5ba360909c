"""Seed 2.3 on a real Ray: a local Ray started in this process on loopback (the same API a multi-node cluster answers
after `ray.init(address=...)`), and the heavy loops sent to it through joblib's Ray backend give exactly the numbers
of the local joblib backend: grid-search candidates (`mlkit.search.grid_search`) and walk-forward folds
(`mlkit.walkforward.walk_forward`). In the default `make test`: Ray starts in about 18 s on a quiet 2-core machine and
the module takes about a minute. Ray's raylet waits a fixed 15 s for its agents (ray-project/ray#65983), which a heavily
loaded machine can miss: the start is tried three times, 10 s apart, before the module fails."""
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlkit import datasets
from mlkit.search import grid_search
from mlkit.trainer import ModelTrainer
from mlkit.vision.data import load_digits


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        for attempt in (1, 2, 3):
            try:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
                break
            except Exception:
                ray.shutdown()
                if attempt == 3: raise
                time.sleep(10)
    assert ray.is_initialized() and len(ray.nodes()) >= 1
    yield ray
    if started: ray.shutdown()


def test_grid_search_on_ray_matches_loky(ray_local):
    d = load_digits()
    X, y = d.X.iloc[::2], d.y[::2]
    grid = {"n_estimators": [10, 30], "max_depth": [3, None]}
    est = ModelTrainer(model_type="random_forest", random_state=0)
    local = grid_search(est, grid, X, y, n_splits=3, n_jobs=2, backend="loky")
    remote = grid_search(est, grid, X, y, n_splits=3, n_jobs=2, backend="ray")
    assert remote.backend == "ray" and local.backend == "loky"
    assert remote.best_params == local.best_params
    cols = ["n_estimators", "max_depth", "mean_score", "std_score", "rank", "split0", "split1", "split2"]
    pd.testing.assert_frame_equal(remote.results[cols], local.results[cols])
    np.testing.assert_array_equal(remote.best_estimator.predict(X), local.best_estimator.predict(X))


def test_walk_forward_on_ray_matches_the_default(ray_local):
    wf = pytest.importorskip("mlkit.walkforward")
    px = datasets.load("sp500_daily")["Close"]
    ret = px.pct_change()
    X = pd.concat({f"ret_lag{k}": ret.shift(k - 1) for k in range(1, 6)}, axis=1)
    y = (ret.shift(-1) > 0).astype(int)
    ok = X.notna().all(axis=1) & ret.shift(-1).notna()
    X, y = X[ok].iloc[:2000], y[ok].iloc[:2000]
    kw = dict(window=500, step=250, progress=False)
    default = wf.walk_forward(X, y, LogisticRegression(), **kw)
    on_ray = wf.walk_forward(X, y, LogisticRegression(), backend="ray", n_jobs=2, **kw)
    assert len(default.folds) == 6
    pd.testing.assert_frame_equal(on_ray.predictions, default.predictions)
    pd.testing.assert_frame_equal(on_ray.folds, default.folds)
    assert on_ray.metrics == default.metrics

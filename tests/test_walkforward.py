"""Walk-forward backends: Ray's joblib backend gives the same out-of-sample predictions as the default (real
BTC-USD)."""
import pandas as pd
import pytest

from mlkit.market.features import DEFAULT_SPECS, make_dataset
from mlkit.market.prices import load_prices
from mlkit.market.research import model_factory
from mlkit.walkforward import walk_forward


@pytest.mark.slow   # starts a local Ray (about 10-30 s on this machine)
def test_ray_backend_gives_the_default_numbers():
    ray = pytest.importorskip("ray")
    X, y = make_dataset(load_prices("BTC-USD", start="2018-01-01", end="2019-06-01", source="bundled"), DEFAULT_SPECS,
                        horizon=1)
    make = model_factory("catboost", 42, threads=1)
    # the backend of the settings: [compute] walk_forward_backend
    default = walk_forward(X, y, make, window=200, step=60, gap=1, progress=False)
    try:
        on_ray = walk_forward(X, y, make, window=200, step=60, gap=1, backend="ray", n_jobs=2, progress=False)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(default.predictions, on_ray.predictions)
    pd.testing.assert_frame_equal(default.folds, on_ray.folds)
    assert default.metrics == on_ray.metrics

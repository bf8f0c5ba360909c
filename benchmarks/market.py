"""Market research speed (issue 3). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/market.py              # CatBoost walk-forward, features, backtest
    .venv/bin/python benchmarks/market.py --autogluon  # also the AutoGluon walk-forward (minutes)

Targets: full BTC-USD walk-forward (365-bar window, 30-bar step, retrain per fold) with CatBoost under 60 s;
features for 1e6 bars under 2 s and at most 1.5x calling TA-Lib directly; a backtest of 1e6 bars under 0.5 s.
The features and backtest figures come from benchmarks/features.py and benchmarks/backtest.py (run them too).
"""
import argparse
import os
import time
import warnings

warnings.filterwarnings("ignore")
from mlkit.core import settings  # noqa: E402
from mlkit.market.features import make_dataset  # noqa: E402
from mlkit.market.prices import load_prices  # noqa: E402
from mlkit.market.research import model_factory  # noqa: E402
from mlkit.walkforward import walk_forward  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--autogluon", action="store_true")
ap.add_argument("--ag-time-limit", type=float, default=20, help="AutoGluon seconds per fold")
a = ap.parse_args()

X, y = make_dataset(load_prices("BTC-USD", source="bundled"))
n_jobs = settings.getint("compute", "n_jobs")
print(f"BTC-USD: {len(X)} rows x {X.shape[1]} features; cores {os.cpu_count()}, workers {n_jobs}")
runs = [("catboost", {})] + ([("autogluon", dict(time_limit=a.ag_time_limit))] if a.autogluon else [])
for name, kw in runs:
    t = time.perf_counter()
    wf = walk_forward(X, y, model_factory(name, **kw), window=365, step=30, gap=1,
                      n_jobs=1 if name == "autogluon" else n_jobs, progress=False)
    dt = time.perf_counter() - t
    print(f"walk-forward {name:9s} {len(wf.folds):3d} folds  {dt:7.1f} s total  {dt / len(wf.folds):6.2f} s/fold  "
          f"accuracy {wf.metrics['accuracy']:.4f} (majority baseline {wf.metrics['baseline_accuracy']:.4f})"
          + ("   target < 60 s" if name == "catboost"
             else f"   (AutoGluon medium_quality, {kw['time_limit']:g} s limit per fold)"))

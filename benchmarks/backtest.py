"""Speed of `mlkit.validation.backtest` on 1,000,000 SYNTHETIC minute bars (a geometric random walk, not market data).

Prints the median wall time of several runs for: positions only, and positions + probabilities + labels
(classification metrics). Asserts nothing. Run: `.venv/bin/python benchmarks/backtest.py [n_bars] [runs]`.
"""
import sys
import time

import numpy as np
import pandas as pd

from mlkit.validation import backtest


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    "A random-walk OHLCV frame with n one-minute bars (synthetic)."
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 2e-4, n))
    hi, lo = np.maximum(open_, close) * 1.0005, np.minimum(open_, close) * 0.9995
    return pd.DataFrame({"Open": open_, "High": hi, "Low": lo, "Close": close, "Volume": rng.uniform(1, 10, n)},
                        index=pd.date_range("2000-01-01", periods=n, freq="min", name="Date"))


def median_time(f, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(n: int = 1_000_000, runs: int = 7) -> None:
    bars = synthetic_bars(n)
    rng = np.random.default_rng(1)
    proba = pd.Series(np.clip(0.5 + 0.1 * np.sin(np.arange(n) / 50) + rng.normal(0, 0.05, n), 0, 1), index=bars.index)
    positions = (proba > 0.5).astype(float)                   # changes every ~50 bars
    y = (bars.Close.shift(-1) > bars.Close).astype(float).where(bars.Close.shift(-1).notna())
    res = backtest(bars, positions)                           # warm-up, and a sanity print
    print(f"synthetic random walk: {n:,} one-minute bars, {res.metrics['n_trades']:,} trades, median of {runs} runs")
    cases = {
        "backtest(positions), next_open": lambda: backtest(bars, positions),
        "backtest(positions), close": lambda: backtest(bars, positions, execution="close"),
        "backtest(proba, y_true) + classification metrics": lambda: backtest(bars, proba=proba, y_true=y),
    }
    for name, f in cases.items():
        print(f"{name:<52s} {median_time(f, runs):.3f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

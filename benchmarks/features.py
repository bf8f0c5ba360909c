"""Speed of `mlkit.market.features.make_features` against calling TA-Lib directly, on 1,000,000 bars.

The bars are SYNTHETIC: a geometric random walk for Close (seeded), Open = previous Close, High/Low a random
distance above/below, lognormal Volume. The figures are about speed only.

    .venv/bin/python benchmarks/features.py [--bars 1000000] [--runs 5]

Three timings, each the median of `--runs` runs:
  * make_features(prices, DEFAULT_SPECS): parses the specs, checks the input, builds the DataFrame;
  * direct: the same TA-Lib calls and the same NumPy arithmetic, written by hand on float64 arrays, returning a dict
    of arrays (no spec parsing, no checks, no DataFrame) -- the floor for these features;
  * TA-Lib alone: only the TA-Lib calls inside `direct` (no derived arithmetic).
Target: make_features under 2 s and at most 1.5x the direct version. Prints; asserts nothing.
"""
import argparse
import statistics
import time

import numpy as np
import pandas as pd
import talib

from mlkit.market.features import DEFAULT_SPECS, make_features


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    "A seeded random-walk OHLCV frame of `n` one-minute bars (synthetic data)."
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0, 0.0005, (2, n)))
    high = np.maximum(open_, close) * (1 + spread[0])
    low = np.minimum(open_, close) * (1 - spread[1])
    volume = rng.lognormal(8, 1, n)
    idx = pd.date_range("2020-01-01", periods=n, freq="min", name="Date")
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=idx)


def talib_calls(c, v):
    "Only the TA-Lib calls the default features need."
    lr = np.r_[np.nan, np.log(c[1:] / c[:-1])]
    return [talib.ROCP(c, 1), talib.STDDEV(lr, 20, 1.0), talib.SMA(v, 20), talib.STDDEV(v, 20, 1.0),
            talib.SMA(c, 20), talib.SMA(c, 50), talib.RSI(c, 14), talib.MACD(c, 12, 26, 9),
            talib.BBANDS(c, 20, 2.0, 2.0, 0)]


def direct(c, v):
    "The default features written out by hand with TA-Lib and NumPy."
    r1 = talib.ROCP(c, 1)
    out = {"ret_1": r1}
    for j in range(1, 6):
        out[f"ret_lag_{j}"] = np.r_[np.full(j, np.nan), r1[:-j]]
    lr = np.r_[np.nan, np.log(c[1:] / c[:-1])]
    out["vol_20"] = talib.STDDEV(lr, 20, 1.0)
    out["volume_z_20"] = (v - talib.SMA(v, 20)) / talib.STDDEV(v, 20, 1.0)
    out["close_sma_20"] = c / talib.SMA(c, 20) - 1
    out["close_sma_50"] = c / talib.SMA(c, 50) - 1
    out["rsi_14"] = talib.RSI(c, 14)
    for name, x in zip(("macd", "macd_signal", "macd_hist"), talib.MACD(c, 12, 26, 9)):
        out[f"{name}_pct_12_26_9"] = x / c
    up, mid, lo = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    out["bb_pctb_20_2"] = (c - lo) / (up - lo)
    out["bb_width_20_2"] = (up - lo) / mid
    return out


def median_time(f, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    prices = synthetic_bars(a.bars)
    c, v = prices["Close"].to_numpy(), prices["Volume"].to_numpy()
    feats = make_features(prices)                        # warm up, and check both give the same numbers
    ref = direct(c, v)
    same = (all(np.allclose(feats[k].to_numpy(), ref[k], equal_nan=True) for k in ref)
            and list(feats.columns) == list(ref))
    t_mk = median_time(lambda: make_features(prices, DEFAULT_SPECS), a.runs)
    t_direct = median_time(lambda: direct(c, v), a.runs)
    t_talib = median_time(lambda: talib_calls(c, v), a.runs)
    print(f"{a.bars:,} synthetic random-walk bars, {feats.shape[1]} features {list(DEFAULT_SPECS)}; "
          f"median of {a.runs} runs")
    print(f"make_features        {t_mk * 1e3:8.1f} ms")
    print(f"direct TA-Lib+NumPy  {t_direct * 1e3:8.1f} ms   "
          f"ratio make_features/direct = {t_mk / t_direct:.2f} (target <= 1.5)")
    print(f"TA-Lib calls alone   {t_talib * 1e3:8.1f} ms   ratio make_features/TA-Lib = {t_mk / t_talib:.2f}")
    print(f"same values as the direct version: {same}; target < 2 s: {'met' if t_mk < 2 else 'MISSED'}; "
          f"ratio <= 1.5: {'met' if t_mk / t_direct <= 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()

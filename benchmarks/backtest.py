"""`mlkit.validation.backtest` against vectorbt (numba and Rust engines), side by side on SYNTHETIC data.

Two cases, the same rule for both libraries (issue 17): a long-only SMA crossover on synthetic random-walk bars
(hourly stamps; a geometric random walk, not market data), positions computed once with the same numpy code, fills
at the next bar's open, 0.2 % fees, no slippage, the whole equity invested.
  1. one strategy, SMA 10/20, 1,000,000 bars;
  2. a grid of 100 strategies (10 fast x 10 slow windows) over 100,000 bars, in one call each.
Timed: mlkit's full call (equity, trades table and every metric it returns: `.metrics` is computed on first
access, and that access is inside the timing) and the call without reading `.metrics`; vectorbt's
`Portfolio.from_signals` plus `value()`, `total_return()`, `trades.count()` and the trade records. Rounds are
interleaved (mlkit, vectorbt numba, vectorbt rust, mlkit, ...); the medians, the first calls, the trade counts and
the final equities of both are printed with the load average. Asserts nothing.

vectorbt 1.2 needs pandas 3, which AutoGluon (in mlkit's lock) does not support, so vectorbt runs in its own
environment, `benchmarks/.venv-vectorbt` (ignored by git), created on first use with `python3.11 -m venv` and
`pip install vectorbt==1.2.0 vectorbt-rust==1.2.0 pyarrow` from the package registry; the data go to it through
Parquet files and it answers over a pipe. Never part of `make test`.
Run: `.venv/bin/python benchmarks/backtest.py [rounds] [n_bars] [grid_bars]` (defaults 15, 1000000, 100000).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-vectorbt"
VBT_PACKAGES = ["vectorbt==1.2.0", "vectorbt-rust==1.2.0", "pyarrow"]
FEE = 0.002
INIT_CASH = 1e60    # vectorbt skips orders below its minimum size: a huge start keeps 27k fee-paying trades above it
FAST, SLOW = (10, 20)
GRID_FAST, GRID_SLOW = list(range(5, 55, 5)), list(range(60, 260, 20))


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    "A random-walk OHLCV frame with n hourly bars (SYNTHETIC data)."
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 2e-4, n))
    hi, lo = np.maximum(open_, close) * 1.0005, np.minimum(open_, close) * 0.9995
    return pd.DataFrame({"Open": open_, "High": hi, "Low": lo, "Close": close, "Volume": rng.uniform(1, 10, n)},
                        index=pd.date_range("2000-01-01", periods=n, freq="h", name="Date"))


def sma(x: np.ndarray, w: int) -> np.ndarray:
    "Simple moving average, NaN for the first w - 1 bars."
    c = np.cumsum(np.concatenate([[0.0], x]))
    out = np.full(len(x), np.nan)
    out[w - 1:] = (c[w:] - c[:-w]) / w
    return out


def crossover(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    "Long (1.0) while SMA(fast) > SMA(slow), decided at the close; flat otherwise."
    return (sma(close, fast) > sma(close, slow)).astype(float)


# --------------------------------------------------------------------------- the vectorbt side (its own venv)
def ensure_vbt_venv() -> Path | None:
    "The vectorbt environment's python, creating the environment on first use; None if that fails (offline, say)."
    py = VENV / "bin" / "python"
    if py.exists(): return py
    print(f"creating {VENV} (first use): python3.11 -m venv + pip install {' '.join(VBT_PACKAGES)}", flush=True)
    try:
        subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *VBT_PACKAGES], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"could not build the vectorbt environment ({e}); timing mlkit alone", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        return None
    return py


def vbt_worker(data_dir: str) -> None:
    "Runs inside the vectorbt venv: loads the Parquet files, answers one timed run per request line."
    t0 = time.perf_counter()
    import vectorbt as vbt
    import_s = time.perf_counter() - t0
    d = Path(data_dir)
    cases = {}
    for case in ("single", "grid"):
        bars = pd.read_parquet(d / f"{case}_bars.parquet")
        pos = pd.read_parquet(d / f"{case}_positions.parquet")
        held = pos.shift(1, fill_value=0.0) > 0                   # decided at the close, filled at the next open
        if case == "single": held = held.iloc[:, 0]
        cases[case] = (bars.Close, bars.Open, held, ~held)

    def run(case, engine):
        close, open_, entries, exits = cases[case]
        t = time.perf_counter()
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, fees=FEE, init_cash=INIT_CASH, freq="1h",
                                        engine=engine)
        value, total, count, records = pf.value(), pf.total_return(), pf.trades.count(), pf.trades.records
        dt = time.perf_counter() - t
        final = (value.iloc[-1] if value.ndim == 1 else value.iloc[-1].to_numpy()) / INIT_CASH
        return dict(t=dt, n_trades=np.atleast_1d(count).tolist(), final=np.atleast_1d(final).tolist(),
                    total=np.atleast_1d(total).tolist(), n_records=len(records))

    first = {f"{case}/{engine}": run(case, engine)["t"] for engine in ("rust", "numba") for case in ("single", "grid")}
    print(json.dumps(dict(version=vbt.__version__, pandas=pd.__version__, import_s=import_s, first=first)), flush=True)
    for line in sys.stdin:
        case, engine = line.split()
        print(json.dumps(run(case, engine)), flush=True)


# --------------------------------------------------------------------------- the mlkit side
def mlkit_run(backtest, bars, pos, metrics: bool = True) -> dict:
    "One timed mlkit call; `metrics=False` skips reading `.metrics` (computed on first access)."
    t = time.perf_counter()
    res = backtest(bars, pos, cost_bps=FEE * 1e4, slippage_bps=0.0)
    if metrics: pass
    final = res.equity.iloc[-1]
    n_trades = (res.trades["strategy"].value_counts().reindex(pos.columns, fill_value=0) if "strategy" in res.trades
                else len(res.trades))
    dt = time.perf_counter() - t
    return dict(t=dt, final=np.atleast_1d(np.asarray(final)).tolist(),
                n_trades=np.atleast_1d(np.asarray(n_trades)).tolist())


def main(rounds: int = 15, n: int = 1_000_000, n_grid: int = 100_000) -> None:
    py = ensure_vbt_venv()
    load0 = os.getloadavg()
    single = synthetic_bars(n, seed=0)
    grid_bars = synthetic_bars(n_grid, seed=1)
    pos1 = pd.Series(crossover(single.Close.to_numpy(), FAST, SLOW), index=single.index, name="sma_10_20")
    c = grid_bars.Close.to_numpy()
    grid = pd.DataFrame({f"sma_{f}_{s}": crossover(c, f, s) for f in GRID_FAST for s in GRID_SLOW},
                        index=grid_bars.index)
    data = {"single": (single, pos1), "grid": (grid_bars, grid)}
    if py is None:
        from mlkit.validation import backtest
        mlkit_run(backtest, single, pos1)
        for case, (bars, pos) in data.items():
            ts = [mlkit_run(backtest, bars, pos)["t"] for _ in range(rounds)]
            print(f"{case}: mlkit backtest + .metrics, median of {rounds}: {1e3 * np.median(ts):.1f} ms")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for case, (bars, pos) in data.items():
            bars[["Open", "Close"]].to_parquet(Path(tmp) / f"{case}_bars.parquet")
            pos.to_frame().to_parquet(Path(tmp) / f"{case}_positions.parquet") if isinstance(pos, pd.Series) \
                else pos.to_parquet(Path(tmp) / f"{case}_positions.parquet")
        worker = subprocess.Popen([str(py), __file__, "--vbt-worker", tmp], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=tmp)
        hello = json.loads(worker.stdout.readline())
        t0 = time.perf_counter()
        from mlkit.validation import backtest
        import_s = time.perf_counter() - t0
        first = {case: mlkit_run(backtest, *data[case])["t"] for case in data}

        def vbt(case, engine):
            worker.stdin.write(f"{case} {engine}\n"); worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        runs = {(case, who): [] for case in data for who in ("mlkit", "mlkit_no_metrics", "numba", "rust")}
        for _ in range(rounds):
            for case, (bars, pos) in data.items():
                runs[case, "mlkit"].append(mlkit_run(backtest, bars, pos))
                runs[case, "mlkit_no_metrics"].append(mlkit_run(backtest, bars, pos, metrics=False))
                runs[case, "numba"].append(vbt(case, "numba"))
                runs[case, "rust"].append(vbt(case, "rust"))
        worker.stdin.close(); worker.wait()
    load1 = os.getloadavg()
    print(f"vectorbt {hello['version']} (pandas {hello['pandas']}, import {hello['import_s']:.2f} s) vs mlkit "
          f"(pandas {pd.__version__}, import {import_s:.2f} s); SYNTHETIC random-walk bars; "
          f"{rounds} interleaved rounds")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} cores)")
    names = {"single": f"1 strategy (SMA {FAST}/{SLOW}) x {n:,} bars",
             "grid": f"{grid.shape[1]} strategies x {n_grid:,} bars"}
    for case in data:
        med = {who: 1e3 * float(np.median([r["t"] for r in runs[case, who]]))
               for who in ("mlkit", "mlkit_no_metrics", "numba", "rust")}
        f1 = {"mlkit": 1e3 * first[case], "numba": 1e3 * hello["first"][f"{case}/numba"],
              "rust": 1e3 * hello["first"][f"{case}/rust"]}
        m, v = runs[case, "mlkit"][-1], runs[case, "rust"][-1]
        vn = runs[case, "numba"][-1]
        same_trades = m["n_trades"] == v["n_trades"] == vn["n_trades"]
        rel = np.max(np.abs(np.array(m["final"]) / np.array(v["final"]) - 1))
        # mlkit invests equity * (1 - f), vectorbt equity / (1 + f): mlkit = vectorbt * (1 - f^2) ** entries
        vbt_adjusted = np.array(v["final"]) * (1 - FEE ** 2) ** np.array(m["n_trades"])
        fee_adj = np.max(np.abs(np.array(m["final"]) / vbt_adjusted - 1))
        print(f"\n{names[case]}")
        print(f"  {'':34s} {'median ms':>10s} {'first ms':>10s} {'vs mlkit':>9s}")
        print(f"  {'mlkit backtest + .metrics':34s} {med['mlkit']:10.1f} {f1['mlkit']:10.1f} {1:9.2f}")
        print(f"  {'mlkit backtest (no .metrics)':34s} {med['mlkit_no_metrics']:10.1f} {'':>10s} "
              f"{med['mlkit_no_metrics'] / med['mlkit']:9.2f}")
        print(f"  {'vectorbt numba':34s} {med['numba']:10.1f} {f1['numba']:10.1f} {med['numba'] / med['mlkit']:9.2f}")
        print(f"  {'vectorbt rust':34s} {med['rust']:10.1f} {f1['rust']:10.1f} {med['rust'] / med['mlkit']:9.2f}")
        nt = (f"{m['n_trades'][0]:,} vs {v['n_trades'][0]:,}" if len(m["n_trades"]) == 1
              else f"{sum(m['n_trades']):,} vs {sum(v['n_trades']):,} in total")
        print(f"  trades mlkit vs vectorbt: {nt} ({'identical' if same_trades else 'DIFFERENT'} per strategy); "
              f"final equity mlkit {m['final'][0]:.6g} vs vectorbt {v['final'][0]:.6g}"
              f"{' (first strategy)' if len(m['final']) > 1 else ''}")
        print(f"  final equity, largest relative difference: {rel:.2e}; "
              f"after the fee model's (1 - f^2) per entry: {fee_adj:.2e}")
    print("\n(vs mlkit > 1: slower than mlkit's full call. Final equities differ by the fee model, f^2 per entry: "
          "mlkit takes the fee from equity at entry, vectorbt sizes so that cash = size * price * (1 + fee).)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--vbt-worker"]: vbt_worker(sys.argv[2])
    else: main(*(int(a) for a in sys.argv[1:4]))

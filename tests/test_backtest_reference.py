"""Independent check: `mlkit.validation.backtest` agrees with backtesting.py (kernc/backtesting.py) on real data.

Same rule (long-only SMA(fast) > SMA(slow) crossover, decided at the close, filled at the next open), same data
(bundled daily BTC-USD, 2014-11-28..2020-01-17), same commission (charged on entry and on exit, as a fraction of the
traded value). backtesting.py trades whole units, so `FractionalBacktest` (1 satoshi units) is used to hold the whole
equity like mlkit's position 1.0 does. The one modelling difference: backtesting.py sizes an entry so that
units * price * (1 + c) = equity, mlkit invests equity * (1 - c); the two differ by c² per trade (1e-6 at 10 bps),
hence the relative tolerance below.
"""

import numpy as np
import pandas as pd
import pytest

from backtesting import Strategy  # noqa: E402
from backtesting.lib import FractionalBacktest  # noqa: E402

from mlkit.validation import backtest  # noqa: E402


def _btc() -> pd.DataFrame:
    from mlkit.datasets import load
    return load("btc_usd_daily")


def _sma(x, n):
    return pd.Series(x).rolling(n).mean().to_numpy()


def _reference(prices: pd.DataFrame, fast: int, slow: int, commission: float):
    class SmaCross(Strategy):
        def init(self):
            self.f = self.I(_sma, self.data.Close, fast)
            self.s = self.I(_sma, self.data.Close, slow)

        def next(self):
            if self.f[-1] > self.s[-1]:
                if not self.position: self.buy()
            elif self.position:
                self.position.close()

    run = FractionalBacktest(prices, SmaCross, cash=1_000_000, commission=commission, finalize_trades=False)
    return run.run()


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.parametrize("fast,slow,commission", [(10, 30, 0.001), (20, 50, 0.0025), (5, 20, 0.0)])
def test_sma_crossover_matches_backtesting_py(fast, slow, commission):
    prices = _btc()
    stats = _reference(prices, fast, slow, commission)
    pos = (prices.Close.rolling(fast).mean() > prices.Close.rolling(slow).mean()).astype(float)
    ours = backtest(prices, pos, cost_bps=commission * 1e4, slippage_bps=0, execution="next_open")

    ref_eq = stats["_equity_curve"]["Equity"] / 1_000_000
    ref_trades = stats["_trades"]
    n_ref = len(ref_trades) + int(stats._strategy.position.size != 0)  # closed trades + the one still open
    assert n_ref > 10
    assert ours.metrics["n_trades"] == n_ref
    # the whole equity curve, bar by bar
    tol = 1.5 * n_ref * commission ** 2 + 1e-9         # c² per entry, see the module docstring
    np.testing.assert_allclose(ours.equity.to_numpy(), ref_eq.to_numpy(), rtol=tol)
    assert ours.metrics["total_return"] == pytest.approx(stats["Return [%]"] / 100, rel=tol, abs=1e-9)
    # entry/exit times and prices of every closed trade
    closed = ours.trades[~ours.trades.is_open].reset_index(drop=True)
    assert list(closed.entry_time) == list(ref_trades.EntryTime)
    assert list(closed.exit_time) == list(ref_trades.ExitTime)
    np.testing.assert_allclose(closed.entry_price, ref_trades.EntryPrice, rtol=1e-9)
    np.testing.assert_allclose(closed.exit_price, ref_trades.ExitPrice, rtol=1e-9)
    # per-trade net return as equity growth: backtesting.py's PnL (commissions included) over the equity it
    # committed at entry, units * price * (1 + c). (Its ReturnPct adds commissions relative to the entry value instead.)
    ref_growth = ref_trades.PnL / (ref_trades.Size * ref_trades.EntryPrice * (1 + commission))
    np.testing.assert_allclose(1 + closed["return"], 1 + ref_growth, rtol=2 * commission ** 2 + 1e-9)


# --------------------------------------------------------------------------------------------------------------
# The fast backtest (issue 17) against today's implementation, frozen below as it was before the rewrite (commit
# adffa8d): a vectorised per-bar computation with a log-sum per trade. Equity, returns and positions must agree bit
# for bit, the trades exactly (times, prices, sides, sizes, bars) with returns equal to 1e-12, the metrics to 1e-12.
from types import SimpleNamespace  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from mlkit.validation import (_check_index, _aligned, _max_drawdown, _sharpe, classification_metrics,  # noqa: E402
                              infer_periods_per_year, positions_from_proba, return_metrics, EXECUTIONS)


def _today_periods_per_year(index: pd.DatetimeIndex) -> float:
    "Bars per year implied by a DatetimeIndex (365-day year if it has weekend bars, else 252)."
    if len(index) < 2: return 252.0
    base = 365.0 if (index.dayofweek >= 5).any() else 252.0
    days = float(np.median(np.diff(index.asi8))) / 86_400e9
    if days < 0.99:                                           # intraday: scale by the bars per calendar day
        day_no = index.asi8 // 86_400_000_000_000
        return base * len(index) / (np.count_nonzero(np.diff(day_no)) + 1)
    return base if days < 2 else 365.25 / days


def _today_trades(h, pre, post, c, exec_price, last_close, index) -> pd.DataFrame:
    "The trades table from held positions `h` and per-bar growth factors, without a per-bar loop."
    n = len(h)
    prev = np.concatenate([[0.0], h[:-1]])
    sh, sp = np.sign(h), np.sign(prev)
    start = (sh != 0) & (sh != sp)
    tid = np.where(sh != 0, np.cumsum(start) - 1, -1)
    ptid = np.concatenate([[-1], tid[:-1]])
    k = int(start.sum())
    same = (sh == sp) & (sh != 0)
    with np.errstate(divide="ignore"):
        parts = [(ptid, np.log(pre)), (tid, np.log(post)),
                 (tid, np.log(1 - c * np.where(same, np.abs(h - prev), np.abs(h)))),
                 (ptid, np.where(same, 0.0, np.log(1 - c * np.abs(prev))))]
    logret = np.zeros(k)
    for ids, w in parts:
        m = ids >= 0
        logret += np.bincount(ids[m], weights=w[m], minlength=k)
    s = np.flatnonzero(start)
    e = np.flatnonzero((tid >= 0) & (np.concatenate([tid[1:], [-1]]) != tid))
    x = np.minimum(e + 1, n - 1)
    is_open = e + 1 >= n
    return pd.DataFrame({"entry_time": index[s], "exit_time": index[x], "side": np.where(sh[s] > 0, "long", "short"),
                         "size": np.abs(h[s]), "entry_price": exec_price[s],
                         "exit_price": np.where(is_open, last_close, exec_price[x]), "bars": e - s + 1,
                         "return": np.expm1(logret), "is_open": is_open})


def _today_backtest(prices: pd.DataFrame,        # OHLCV bars, DatetimeIndex ascending (Open and Close are used)
             positions=None,              # position per bar in [-1, 1], decided at its close; or give `proba`
             *,
             proba=None,                  # P(up) per bar: builds positions when `positions` is None, and ROC AUC
             y_true=None,                 # true labels per bar (NaN = unknown) for classification metrics
             y_pred=None,                 # predicted labels; default proba > threshold
             threshold: float = 0.5,      # see `positions_from_proba`
             long_short: bool = False,    # see `positions_from_proba`
             cost_bps: float = 10.0,      # commission per unit of position traded, in basis points
             slippage_bps: float = 5.0,   # slippage per unit of position traded, in basis points
             execution: str = "next_open",  # "next_open" or "close" (see above)
             periods_per_year: float | None = None,  # default: inferred from the index
             initial_capital: float = 1.0,
             ) -> SimpleNamespace:
    "Backtest a position series on OHLCV bars without lookahead, charging costs on every position change."
    if not isinstance(prices, pd.DataFrame):
        raise TypeError(f"prices must be a DataFrame of OHLCV bars, got {type(prices).__name__}")
    if execution not in EXECUTIONS:
        raise ValueError(f"unknown execution {execution!r}; valid values: {list(EXECUTIONS)}")
    need = ["Open", "Close"] if execution == "next_open" else ["Close"]
    missing = [col for col in need if col not in prices.columns]
    if missing: raise ValueError(f"prices is missing column(s) {missing} needed for execution={execution!r}; "
                                 f"expected OHLCV columns Open, High, Low, Close, Volume, got {list(prices.columns)}")
    index = _check_index(prices.index)
    if len(index) < 2: raise ValueError(f"prices needs at least 2 bars, got {len(index)}")
    for name, v in (("cost_bps", cost_bps), ("slippage_bps", slippage_bps)):
        if not (np.isfinite(v) and v >= 0): raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    px = {col: prices[col].to_numpy(dtype=float) for col in need}
    for col, v in px.items():
        if not (np.isfinite(v) & (v > 0)).all():
            raise ValueError(f"prices[{col!r}] must be finite and > 0 on every bar")
    if positions is None:
        if proba is None: raise ValueError("give positions, or proba to build them with positions_from_proba")
        positions = positions_from_proba(_aligned(proba, index, "proba"), threshold, long_short).to_numpy()
    p = _aligned(positions, index, "positions")
    if np.isnan(p).any():
        raise ValueError(f"positions has {int(np.isnan(p).sum())} NaN value(s); fill them (e.g. 0 = flat)")
    if (np.abs(p) > 1).any(): raise ValueError(f"positions must lie in [-1, 1], got values from {p.min()} to {p.max()}")
    c = (cost_bps + slippage_bps) / 1e4
    close = px["Close"]
    if execution == "next_open":
        h = np.concatenate([[0.0], p[:-1]])               # held from bar t's open: decided at t-1's close
        a = np.concatenate([[0.0], px["Open"][1:] / close[:-1] - 1])
        b = close / px["Open"] - 1
        exec_price = px["Open"]
    else:
        h, b, exec_price = p, np.zeros(len(p)), close
        a = np.concatenate([[0.0], close[1:] / close[:-1] - 1])
    prev = np.concatenate([[0.0], h[:-1]])
    pre, post = 1 + prev * a, 1 + h * b
    growth = pre * (1 - c * np.abs(h - prev)) * post
    ppy = float(periods_per_year or _today_periods_per_year(index))
    ret = pd.Series(growth - 1, index=index, name="strategy_return")
    trades = _today_trades(h, pre, post, c, exec_price, close[-1], index)
    bh = np.concatenate([[0.0], close[1:] / close[:-1] - 1])
    metrics = return_metrics(ret, ppy)
    metrics.update(win_rate=float((trades["return"] > 0).mean()) if len(trades) else np.nan,
                   exposure=float(np.mean(h != 0)), n_trades=len(trades), turnover=float(np.abs(h - prev).sum()),
                   bh_total_return=float(close[-1] / close[0] - 1), bh_sharpe=float(_sharpe(bh, ppy)),
                   bh_max_drawdown=float(_max_drawdown(bh)), periods_per_year=ppy, n_bars=len(index))
    if y_true is not None:
        metrics = {**classification_metrics(_aligned(y_true, index, "y_true"),
                                            None if y_pred is None else _aligned(y_pred, index, "y_pred"),
                                            None if proba is None else _aligned(proba, index, "proba"), threshold),
                   **metrics}
    return SimpleNamespace(equity=pd.Series(initial_capital * np.cumprod(growth), index=index, name="equity"),
                          returns=ret, positions=pd.Series(h, index=index, name="position"), trades=trades,
                          metrics=metrics)


def _same(new, ref, rtol=1e-12):
    "Assert that a new BacktestResult equals today's result (see the note above)."
    np.testing.assert_array_equal(new.positions.to_numpy(), ref.positions.to_numpy())
    np.testing.assert_array_equal(new.returns.to_numpy(), ref.returns.to_numpy())
    np.testing.assert_array_equal(new.equity.to_numpy(), ref.equity.to_numpy())
    assert new.equity.index.equals(ref.equity.index) and new.equity.name == ref.equity.name
    assert list(new.trades.columns) == list(ref.trades.columns)
    for col in new.trades.columns:
        if col == "return":
            np.testing.assert_allclose(1 + new.trades[col].to_numpy(), 1 + ref.trades[col].to_numpy(), rtol=rtol,
                                       atol=0)
        else:
            pd.testing.assert_series_equal(new.trades[col], ref.trades[col])
    assert list(new.metrics) == list(ref.metrics)
    for key, v in ref.metrics.items():
        assert type(new.metrics[key]) is type(v), key
        # atol: a metric near zero (a drawdown of -6e-8) may differ in the last bits by summation order (1e-16 seen)
        np.testing.assert_allclose(new.metrics[key], v, rtol=rtol, atol=1e-12, err_msg=key)


def _bars(close, gap, freq="D", start="2024-01-01"):
    "OHLC bars from closes and open/previous-close gaps (synthetic data for the property tests)."
    close = np.asarray(close, float)
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.asarray(gap, float)
    return pd.DataFrame({"Open": open_, "High": np.maximum(open_, close), "Low": np.minimum(open_, close),
                         "Close": close, "Volume": 1.0}, index=pd.date_range(start, periods=len(close), freq=freq))


_levels = st.sampled_from([-1.0, -0.5, 0.0, 0.0, 0.25, 1.0, 1.0])


@st.composite
def _case(draw, min_bars=2, max_bars=40):
    n = draw(st.integers(min_bars, max_bars))
    moves = draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n))
    close = 100 * np.exp(np.cumsum(moves))
    gap = np.exp(draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n)))
    runs = draw(st.lists(st.tuples(_levels, st.integers(1, 6)), min_size=1, max_size=n))
    pos = np.concatenate([np.full(m, v) for v, m in runs])[:n]
    pos = np.pad(pos, (0, n - len(pos)), constant_values=draw(_levels))
    freq = draw(st.sampled_from(["D", "B", "h", "15min", "W"]))
    return _bars(close, gap, freq), pos


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case(), st.sampled_from(EXECUTIONS), st.sampled_from([0.0, 5.0, 20.0, 150.0]), st.sampled_from([0.0, 5.0]),
       st.sampled_from([1.0, 250.0]))
def test_fast_backtest_equals_todays(case, execution, cost, slip, capital):
    bars, pos = case
    kw = dict(cost_bps=cost, slippage_bps=slip, execution=execution, initial_capital=capital)
    _same(backtest(bars, pos, **kw), _today_backtest(bars, pos, **kw))


@settings(max_examples=100, deadline=None)
@given(_case(), st.lists(st.one_of(st.floats(0, 1), st.just(np.nan)), min_size=40, max_size=40),
       st.floats(0.5, 0.9), st.booleans())
def test_fast_backtest_equals_todays_with_proba(case, proba, threshold, long_short):
    "NaN probabilities (no signal) mean flat; classification metrics ride along."
    bars, _ = case
    n = len(bars)
    proba = pd.Series(proba[:n], index=bars.index)
    y = (bars.Close.shift(-1) > bars.Close).astype(float).where(bars.Close.shift(-1).notna())
    kw = dict(proba=proba, y_true=y, threshold=threshold, long_short=long_short)
    _same(backtest(bars, **kw), _today_backtest(bars, **kw))


@settings(max_examples=60, deadline=None)
@given(_case(), st.integers(1, 5), st.sampled_from(EXECUTIONS))
def test_many_strategies_equal_one_call_each(case, k, execution):
    "A 2-D positions frame gives, column by column, exactly what a 1-D call on that column gives."
    bars, pos = case
    rng = np.random.default_rng(len(bars) * k)
    grid = pd.DataFrame({f"s{j}": np.roll(pos, j) * rng.choice([1, -1]) for j in range(k + 1)}, index=bars.index)
    many = backtest(bars, grid, execution=execution)
    assert isinstance(many.metrics, pd.DataFrame) and list(many.metrics.index) == list(grid.columns)
    for col in grid:
        one = backtest(bars, grid[col], execution=execution)
        np.testing.assert_array_equal(many.equity[col].to_numpy(), one.equity.to_numpy())
        np.testing.assert_array_equal(many.returns[col].to_numpy(), one.returns.to_numpy())
        mine = many.trades[many.trades.strategy == col].drop(columns="strategy").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, one.trades)
        got = many.metrics.loc[col]
        for key, v in one.metrics.items():
            np.testing.assert_allclose(got[key], v, rtol=1e-15, err_msg=key)


def test_edge_cases_match_todays():
    bars = _bars([100, 101, 99, 102, 104, 103], [1, 1.01, 0.99, 1, 1.02, 1], freq="D")
    for execution in EXECUTIONS:
        for pos in ([0, 0, 0, 0, 0, 0],              # no trades: metrics stay defined
                    [0, 0, 0, 1, 1, 1],              # a position still open at the end
                    [1, 1, 1, 1, 1, 1],              # held throughout (opened at the start with close execution)
                    [0, 0, 0, 0, 0, 1],              # decided on the last bar: never executed with next_open
                    [1, -1, 1, -1, 1, -1],           # a flip on every bar
                    [0.5, 1, 0.25, 0, -0.5, -1]):    # resizing within a trade
            pos = np.asarray(pos, float)
            _same(backtest(bars, pos, execution=execution), _today_backtest(bars, pos, execution=execution))
    two = bars.iloc[:2]
    _same(backtest(two, [1.0, 1.0]), _today_backtest(two, [1.0, 1.0]))              # the smallest backtest
    for bad, match in (((bars.iloc[:1], [1.0]), "at least 2 bars"),                     # a single bar
                       ((bars, [np.nan, 1, 1, 0, 0, 0]), "1 NaN value"),                # NaN signals must be filled
                       ((bars, pd.DataFrame({"a": np.zeros(5)})), "rows but prices has 6")):
        with pytest.raises(ValueError, match=match): _today_backtest(*bad)
        with pytest.raises(ValueError, match=match): backtest(*bad)


def test_calendar_inference_matches_todays():
    "Integer arithmetic on the stamps gives today's periods per year on regular and irregular calendars."
    rng = np.random.default_rng(0)
    for idx in (pd.date_range("2024-01-01", periods=500, freq="h"),
                pd.date_range("2024-01-01 00:30", periods=90, freq="15min"),
                pd.bdate_range("2020-01-01", periods=300), pd.date_range("2020-01-01", periods=300, freq="D"),
                pd.date_range("2024-01-01", periods=60, freq="W"), pd.date_range("1965-03-01", periods=100, freq="4h"),
                pd.date_range("2024-01-06", periods=3, freq="h"), pd.date_range("2024-01-08", periods=4, freq="D"),
                pd.date_range("2024-01-01", periods=1000, freq="h", tz="America/New_York"),
                pd.DatetimeIndex(np.sort(rng.choice(pd.date_range("2024-01-01", periods=5000, freq="min"), 700,
                                                    replace=False))),
                pd.bdate_range("2020-01-01", periods=50).repeat(3) + pd.to_timedelta(np.tile([9, 12, 15], 50), "h")):
        assert infer_periods_per_year(idx) == _today_periods_per_year(idx), idx[:3]

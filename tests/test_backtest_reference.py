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

"""Paper trading under concurrency: several processes trading on one SQLite database (WAL, BEGIN IMMEDIATE)."""
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from mlkit.db import dispose_engines, session_scope
from mlkit.market.trading import (Executor, PaperAccount, PaperBroker, PaperDecision, PaperFill, PaperOrder, paper_trade,
                                  pnl_summary)

START, END = "2019-03-01", "2019-05-01"

WORKER = textwrap.dedent("""
    import sys
    from mlkit.market.trading import Executor, PaperBroker, paper_trade
    url, account, start, end = sys.argv[1:5]
    def predict(symbol, day):   # deterministic (as _predict below): high-confidence rise for 5 days, then fall for 5
        return {"prob_up": 0.9 if (day.dayofyear // 5) % 2 else 0.1}
    ex = Executor(PaperBroker("close", source="bundled"), url, account=account, starting_cash=10_000, max_position=0.8)
    paper_trade("BTC-USD", start, end, predict, executor=ex)
""")


def _run(url, accounts):
    "Start one worker process per account name at once; wait for all; fail on any error."
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, a, START, END], stderr=subprocess.PIPE, text=True)
             for a in accounts]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]


def _state(url, account):
    with session_scope(url) as s:
        a = s.scalar(select(PaperAccount).filter_by(name=account))
        n = {t.__name__: s.scalar(select(func.count()).select_from(t).filter_by(account_id=a.id))
             for t in (PaperDecision, PaperOrder, PaperFill)}
        filled = s.scalar(select(func.count()).select_from(PaperOrder).filter_by(account_id=a.id, status="filled"))
        return a.cash, n, filled


def _predict(symbol, day):
    return {"prob_up": 0.9 if (day.dayofyear // 5) % 2 else 0.1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "The replay once in this process on its own database, and three processes at once on a shared one."
    d = tmp_path_factory.mktemp("trading")
    ref_url, url = f"sqlite:///{d}/ref.db", f"sqlite:///{d}/shared.db"
    ex = Executor(PaperBroker("close", source="bundled"), ref_url, account="solo", starting_cash=10_000, max_position=0.8)
    paper_trade("BTC-USD", START, END, _predict, executor=ex)
    _run(url, ["shared", "shared", "other"])      # two on the same account and days, one on another account
    yield _state(ref_url, "solo"), url
    dispose_engines()


def test_two_processes_one_account_trade_each_day_once(runs):
    reference, url = runs
    cash, n, filled = _state(url, "shared")
    assert (cash, n, filled) == reference                 # exactly what one process does: no day traded twice
    assert n["PaperOrder"] > 2 and filled == n["PaperFill"]
    p = pnl_summary("shared", url, venue=PaperBroker("close", source="bundled"), exact=True)
    assert p["cash"] >= 0 and p["n_decisions"] == n["PaperDecision"]
    assert p["equity"] == p["starting_cash"] + p["realised_pnl"] + p["unrealised_pnl"] - p["costs"]


def test_accounts_in_parallel_do_not_interfere(runs):
    reference, url = runs
    assert _state(url, "other") == reference
    with session_scope(url) as s:
        assert sorted(s.scalars(select(PaperAccount.name))) == ["other", "shared"]

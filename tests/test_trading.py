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


def test_confidence_labels_match_the_walk_forward_figures():
    "The served labels of real walk-forward predictions say what their measured accuracy says (scipy's Wilson bound)."
    import numpy as np
    import pandas as pd
    from scipy.stats import binomtest
    from mlkit.market.features import DEFAULT_SPECS, make_dataset
    from mlkit.market.prices import load_prices
    from mlkit.market.research import model_factory
    from mlkit.market.trading import CONFIDENCE_EDGES, confidence_label, confidence_table
    from mlkit.walkforward import walk_forward
    X, y = make_dataset(load_prices("BTC-USD", start="2017-09-01", source="bundled"), DEFAULT_SPECS, horizon=1)
    for name in ("catboost", "majority"):
        wf = walk_forward(X, y, model_factory(name, 42, threads=2), window=365, step=60, gap=1, backend="serial", progress=False)
        p, base = wf.predictions, wf.metrics["baseline_accuracy"]
        t = confidence_table(p.proba, p.y_true, baseline_pred=p.baseline)     # each level against the baseline on its own rows
        base_right = (p.baseline == p.y_true).to_numpy()
        served = np.array([confidence_label(float(v), table=t.to_dict()) for v in p.proba])
        right = ((p.proba > 0.5).astype(int) == p.y_true).to_numpy()
        level = pd.cut(np.maximum(p.proba, 1 - p.proba), list(CONFIDENCE_EDGES), right=False, include_lowest=True, labels=False)
        level = np.where(np.maximum(p.proba, 1 - p.proba) >= 1.0, len(CONFIDENCE_EDGES) - 2, level)
        assert t.n == len(p) == int(t.levels.n.sum())
        assert abs(t.baseline_accuracy - base) < 1e-12 and abs(t.accuracy - right.mean()) < 1e-12
        assert (right.mean() > base + 1e-9) == t.beats_baseline
        for k, row in t.levels.iterrows():
            r, rb = right[level == k], base_right[level == k]
            if len(r): assert abs(row.baseline_accuracy - rb.mean()) < 1e-12
            assert len(r) == row.n and (served[level == k] == (row.label if row.label != "high" or t.beats_baseline else "medium")).all()
            if row.label == "high":
                assert t.beats_baseline and len(r) >= 30
                assert binomtest(int(r.sum()), len(r)).proportion_ci(0.90, method="wilson").low > rb.mean()
            elif row.label == "medium": assert len(r) >= 30 and r.mean() > rb.mean()
            elif len(r) >= 30: assert r.mean() <= rb.mean() + 1e-9
        if not t.beats_baseline:
            assert "high" not in set(served) and "does not beat" in t.warning
    assert name == "majority" and not t.beats_baseline and set(served) == {"low"}   # the baseline never beats itself

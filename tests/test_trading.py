"""Paper trading under concurrency: several processes trading on one SQLite database (WAL, BEGIN IMMEDIATE)."""
import functools
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from mlkit.db import dispose_engines, session_scope
from mlkit.market.trading import (CONFIDENCE_EDGES, ConfidenceTable, Executor, PaperAccount, PaperBroker, PaperDecision,
                                  PaperFill, PaperOrder, confidence_label, confidence_table, paper_trade, pnl_summary)

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
    ex = Executor(PaperBroker("close", source="bundled"), ref_url, account="solo", starting_cash=10_000,
                  max_position=0.8)
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
        wf = walk_forward(X, y, model_factory(name, 42, threads=2), window=365, step=60, gap=1, backend="serial",
                          progress=False)
        p, base = wf.predictions, wf.metrics["baseline_accuracy"]
        # each level against the baseline on its own rows
        t = confidence_table(p.proba, p.y_true, baseline_pred=p.baseline)
        base_right = (p.baseline == p.y_true).to_numpy()
        served = np.array([confidence_label(float(v), table=t.to_dict()) for v in p.proba])
        right = ((p.proba > 0.5).astype(int) == p.y_true).to_numpy()
        level = pd.cut(np.maximum(p.proba, 1 - p.proba), list(CONFIDENCE_EDGES), right=False, include_lowest=True,
                       labels=False)
        level = np.where(np.maximum(p.proba, 1 - p.proba) >= 1.0, len(CONFIDENCE_EDGES) - 2, level)
        assert t.n == len(p) == int(t.levels.n.sum())
        assert abs(t.baseline_accuracy - base) < 1e-12 and abs(t.accuracy - right.mean()) < 1e-12
        assert (right.mean() > base + 1e-9) == t.beats_baseline
        for k, row in t.levels.iterrows():
            r, rb = right[level == k], base_right[level == k]
            if len(r): assert abs(row.baseline_accuracy - rb.mean()) < 1e-12
            shown = row.label if row.label != "high" or t.beats_baseline else "medium"
            assert len(r) == row.n and (served[level == k] == shown).all()
            if row.label == "high":
                assert t.beats_baseline and len(r) >= 30
                assert binomtest(int(r.sum()), len(r)).proportion_ci(0.90, method="wilson").low > rb.mean()
            elif row.label == "medium": assert len(r) >= 30 and r.mean() > rb.mean()
            elif len(r) >= 30: assert r.mean() <= rb.mean() + 1e-9
        if not t.beats_baseline:
            assert "high" not in set(served) and "does not beat" in t.warning
    assert name == "majority" and not t.beats_baseline and set(served) == {"low"}   # the baseline never beats itself


# --- ConfidenceTable.labels: the vectorised confidence_label (issue 16) ---------------------------------------------

_EDGE_P = [0.0, 1.0, 0.5, *CONFIDENCE_EDGES, *(1 - e for e in CONFIDENCE_EDGES), np.nextafter(0.7, 1),
           np.nextafter(0.3, 0)]
_probs = st.lists(st.one_of(st.sampled_from(_EDGE_P), st.floats(0, 1)), max_size=60)


@functools.lru_cache
def _table(seed: int, baseline: float) -> ConfidenceTable:
    "A measured table on seeded synthetic predictions (levels of every kind: high, medium, low, empty)."
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(0.72, 1.0, 120), rng.uniform(0.0, 0.45, 120), np.full(5, 0.58)]
    y = (rng.random(len(p)) < np.where(np.maximum(p, 1 - p) > 0.7, 0.9, 0.6)).astype(int)
    y = np.where(p > 0.5, y, 1 - y)                  # the predicted direction is right with those rates
    return confidence_table(p, y, baseline_accuracy=baseline)


@pytest.mark.parametrize("baseline", [0.55, 0.95])   # a model that beats its baseline, and one that does not
@hsettings(max_examples=200, deadline=None)
@given(probs=_probs, seed=st.integers(0, 3))
def test_labels_equal_confidence_label_per_value(baseline, probs, seed):
    t = _table(seed, baseline)
    got = t.labels(np.array(probs, dtype=float))
    assert got.tolist() == [confidence_label(p, table=t) for p in probs]
    assert got.tolist() == [confidence_label(p, table=t.to_dict()) for p in probs]   # the card's dict labels the same


def test_labels_cover_every_kind_of_level():
    "The tables the property test draws hold high, medium and low levels (else it would test little)."
    beats, weak = _table(0, 0.55), _table(0, 0.95)
    assert {"high", "low"} <= set(beats.levels.label) and beats.beats_baseline
    assert not weak.beats_baseline and "high" not in set(weak.labels(np.linspace(0, 1, 101)))


@pytest.mark.parametrize("bad, exc, words", [([0.2, 1.5], ValueError, "got 1.5 at [1]"),
                                             ([np.nan], ValueError, "got nan"),
                                             ([-0.0001], ValueError, "must be in [0, 1]"),
                                             (["0.8"], TypeError, "must be numbers"),
                                             ([True], TypeError, "dtype bool")])
def test_labels_reject_bad_probabilities(bad, exc, words):
    with pytest.raises(exc, match=re.escape(words)):
        _table(0, 0.55).labels(bad)

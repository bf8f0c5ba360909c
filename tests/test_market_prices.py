"""Integration tests of mlkit.market.prices: the Parquet price cache across processes, offline fallbacks.

Every Yahoo Finance call goes through `OfflineYahooSession` (a requests Session whose transport answers Yahoo's chart
API from the bundled Bitcoin bars, or raises ConnectionError): real yfinance code, no network. Reads that must come
from the cache run in a fresh Python process, so yfinance's in-memory memo of chart requests cannot stand in for it.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from mlkit.core import DataError
from mlkit.market.prices import OfflineYahooSession, load_prices



@pytest.fixture(autouse=True)
def real_yahoo_session_afterwards():
    "yfinance keeps the last session it was given: hand it a real (unused) one after each test."
    yield
    import yfinance as yf
    from curl_cffi import requests as curl_requests
    yf.Ticker("BTC-USD", session=curl_requests.Session(impersonate="chrome"))



@pytest.fixture(autouse=True)
def _fresh_yahoo_budget():
    "Each test starts with a full Yahoo token bucket: the limit is per process, and earlier tests spend it."
    from mlkit.market import prices
    with prices._limiter_lock: prices._limiters.clear()
    yield

def run(code: str, cwd: Path) -> dict:
    """Run `code` in a new interpreter (cwd without a settings.ini, so logs stay in the temp dir); returns its JSON
    print."""
    prelude = textwrap.dedent("""
        import json, pandas as pd
        from mlkit.market.prices import OfflineYahooSession, load_prices
        btc = load_prices("BTC-USD", source="bundled")
    """)
    r = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_cache_survives_the_process_and_answers_without_network(tmp_path):
    cache = tmp_path / "cache"
    btc = load_prices("BTC-USD", source="bundled")
    s = OfflineYahooSession({"BTC-USD": btc})
    first = load_prices("BTC-USD", "2017-01-01", "2018-01-01", cache_dir=cache, session=s)
    assert first.attrs["source"] == "yfinance" and len(first) == 365 and s.calls >= 1
    assert (cache / "prices" / "BTC-USD_1d.parquet").is_file()

    # a new process with no network: a covered sub-range comes from the cache, not from a fallback
    second = run(f"""
        s = OfflineYahooSession(fail=True)
        df = load_prices("BTC-USD", "2017-06-01", "2017-07-01", cache_dir={str(cache)!r}, session=s)
        ref = btc.loc["2017-06"].assign(Volume=lambda x: x.Volume.round())
        print(json.dumps({{"source": df.attrs["source"], "same": bool(df.equals(ref)), "calls": s.calls}}))
    """, tmp_path)
    assert second["source"].startswith("cache ") and "fallback" not in second["source"]
    assert second["same"] and second["calls"] == 0

    # the latest bars (end=None) need the network; offline, the cache is the fallback
    third = run(f"""
        df = load_prices("BTC-USD", "2017-12-01", cache_dir={str(cache)!r}, session=OfflineYahooSession(fail=True))
        print(json.dumps({{"source": df.attrs["source"], "last": str(df.index[-1].date())}}))
    """, tmp_path)
    assert third["source"].endswith("(offline fallback)") and third["last"] == "2017-12-31"


def test_offline_error_lists_what_is_available(tmp_path):
    btc = load_prices("BTC-USD", source="bundled")
    load_prices("BTC-USD", "2016-01-01", "2016-02-01", cache_dir=tmp_path,
                session=OfflineYahooSession({"BTC-USD": btc}))
    with pytest.raises(DataError,
                       match=r"Available offline: bundled: \['BTC-USD', '\^GSPC'\]; cached: \['BTC-USD \(1d\)'\]"):
        load_prices("ETH-USD", "2016-01-01", "2016-02-01", cache_dir=tmp_path, session=OfflineYahooSession(fail=True))
    # a bundled symbol still loads offline, through the bundled fallback
    gspc = load_prices("^GSPC", "2018-01-01", cache_dir=tmp_path, session=OfflineYahooSession(fail=True))
    assert (gspc.attrs["source"] == "bundled sp500_daily (offline fallback)"
            and str(gspc.index[-1].date()) == "2018-12-31")


def test_cache_file_is_valid_parquet_with_its_range(tmp_path):
    btc = load_prices("BTC-USD", source="bundled")
    load_prices("BTC-USD", "2015-03-01", "2015-04-01", cache_dir=tmp_path,
                session=OfflineYahooSession({"BTC-USD": btc}))
    c = pd.read_parquet(tmp_path / "prices" / "BTC-USD_1d.parquet")
    assert list(c.columns) == ["Open", "High", "Low", "Close", "Volume"] and len(c) == 31
    assert (c.attrs["symbol"], c.attrs["covered_start"][:10], c.attrs["covered_end"][:10]) == ("BTC-USD", "2015-03-01",
                                                                                               "2015-04-01")
    assert not list((tmp_path / "prices").glob("*.tmp"))

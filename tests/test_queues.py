"""The queues domain end to end: analytics against hand-computed figures, hierarchy sums, calibrated intervals on
held-out data, uploads (good and hostile) through the REST app, the typed BentoML API in process, and the dashboard."""
import re

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlkit.core import DataError
from mlkit.queues import analytics as A
from mlkit.queues.data import load_bundled, parse_upload, series
from mlkit.queues.forecast import QueueForecaster, future_periods


@pytest.fixture(scope="module")
def nyc():
    return load_bundled("nyc_departures")


def small_frame():
    "Hand-checkable: leaves 2 and 3 under 1, Mon 2 Jan to Tue 10 Jan 2017; leaf 3 has nothing on the 3rd."
    rows = [f"2,2017-01-{d:02d},{d}" for d in range(2, 11)] + [f"3,2017-01-{d:02d},10" for d in range(2, 11) if d != 3]
    return parse_upload(("queueId,date,new_tickets\n" + "\n".join(rows) + "\n").encode(),
                        b"queueId,parentId,name\n1,,All\n2,1,Mail\n3,1,Phone\n", max_bytes=10_000, max_rows=100)


def test_analytics_match_hand_computed_figures():
    d = small_frame()
    daily = [12, 3, 14, 15, 16, 17, 18, 19, 20]
    s = A.queue_stats(d, 1)
    assert (s.load.total_tickets, s.load.peak_load, s.load.min_load, s.load.median_load) == (sum(daily), 20, 3, 16.0)
    assert s.load.std_dev == pytest.approx(np.std(daily, ddof=1))
    assert s.load.percentile_95 == pytest.approx(np.percentile(daily, 95))
    assert (s.time.weekend_avg, s.time.busiest_period) == ((17 + 18) / 2, "2017-01-10")
    assert A.daily_average(d, 2).average_load == [5.5, 6.5, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert A.weekly_average(d, 1).average_load == [95 / 7, 39 / 2]
    assert A.historical(d, 1, "weekly").values == [95, 39]
    assert [q.load for q in A.queues_by_level(d)[2]] == [54, 80]


def test_parents_are_the_sum_of_their_leaves_at_every_granularity(nyc):
    assert nyc.granularities() == ["daily", "weekly"]
    for g in nyc.granularities():
        total = series(nyc, 1, g)
        assert (sum(series(nyc, o, g) for o in (2, 3, 4)) == total).all()
        assert total.sum() == nyc.loads.to_numpy().sum()


def test_bad_requests_name_the_valid_options(nyc):
    with pytest.raises(DataError, match="valid granularities: \\['daily', 'weekly'\\]"): series(nyc, 1, "hourly")
    with pytest.raises(DataError, match="valid ids"): series(nyc, 999)
    with pytest.raises(DataError, match="after end"): series(nyc, 1, start="2013-03-01", end="2013-02-01")
    with pytest.raises(DataError, match="no daily data"): series(nyc, 1, start="2015-01-01")


def test_calibrated_intervals_cover_held_out_data():
    "Synthetic (labelled as such) Poisson counts with a weekly pattern: the held-out coverage is near nominal."
    rng = np.random.default_rng(0)
    days = pd.date_range("2017-01-02", periods=280)
    lam = {2: 40 + 20 * (days.dayofweek < 5), 3: 15 + 10 * (days.dayofweek == 0)}
    rows = [f"{q},{d.date()},{n}" for q in (2, 3) for d, n in zip(days, rng.poisson(lam[q]))]
    data = parse_upload(("queueId,date,new_tickets\n" + "\n".join(rows)).encode(), b"queueId,parentId\n1,\n2,1\n3,1\n",
                        max_bytes=100_000, max_rows=10_000)
    fc = QueueForecaster("daily", h=14, n_windows=6).fit(data)
    cov = fc.backtest_.coverage
    assert abs(cov[80]["all"] - 0.80) < 0.10 and abs(cov[95]["all"] - 0.95) < 0.06, cov
    r = fc.forecast(1, 10, levels=[50, 80, 95])
    assert len(r.values) == len(r.timestamps) == 10 and r.timestamps[0] == str((days[-1] + pd.Timedelta(days=1)).date())
    assert {lv: (len(r.lower[lv]), len(r.upper[lv])) for lv in (50, 80, 95)} == {lv: (10, 10) for lv in (50, 80, 95)}
    for lo50, lo80, lo95, m, hi50, hi95 in zip(r.lower[50], r.lower[80], r.lower[95], r.values, r.upper[50],
                                               r.upper[95]):
        assert 0 <= lo95 <= lo80 <= lo50 <= m <= hi50 <= hi95
    f, _ = fc.predict_all(10, [80])
    w = f.pivot(index="ds", columns="unique_id", values="mean")
    np.testing.assert_allclose(w["1"], w["2"] + w["3"], rtol=1e-9)         # reconciled: children add up to the parent
    with pytest.raises(DataError, match="strictly between 0 and 100"): fc.forecast(1, 3, levels=[0])
    with pytest.raises(DataError, match="horizon must be an integer from 1 to 300"): fc.forecast(1, 301)


def test_closed_periods_are_never_forecast():
    bank = load_bundled("bank_calls")
    f = future_periods(bank, "5min", 169 * 3)
    assert set(f.dayofweek) <= {0, 1, 2, 3, 4} and f.hour.min() >= 7 and f.hour.max() <= 21


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    "QueuesService in process, on a store holding a small weekly nyc forecaster and a database of its own."
    from mlkit.queues.models import QueuesBackend, train_default
    from mlkit.serve import queues as Q
    from mlkit.store import using_home
    home = tmp_path_factory.mktemp("queues")
    with using_home(home):
        train_default(home, ["nyc_departures"],
                      forecasters={"nyc_departures": QueueForecaster("weekly", h=4, n_windows=2)})
        class Svc(Q.QueuesService.inner):
            def __init__(self):
                self.queues = Q.use_backend(QueuesBackend(home=home, engine=f"sqlite:///{home}/q.db"))
        svc = Q.QueuesService
        orig = svc.inner.__init__
        svc.inner.__init__ = Svc.__init__
        try:
            with TestClient(svc.to_asgi()) as c: yield c
        finally: svc.inner.__init__ = orig


def test_routes_answer_and_document_every_field(client):
    assert client.get("/queues/api/queues").json()["queues_by_level"]["2"][0]["name"] == "EWR"
    r = client.get("/queues/api/historical",
                   params={"queue_id": 2, "granularity": "weekly", "start_date": "2013-03-04",
                           "end_date": "2013-03-17"})
    assert r.status_code == 200 and r.json()["timestamps"] == ["2013-03-04", "2013-03-11"]
    assert client.get("/queues/api/daily_average", params={"queue_id": 1}).json()["weekdays"][0] == "Monday"
    assert client.get("/queues/api/queue_stats", params={"queue_id": 1}).json()["structure"]["leaf_nodes"] == 35
    assert client.get("/queues/api/sample_data",
                      params={"df_type": "tickets", "format": "csv"}).text.startswith("queueId,date,new_tickets")
    r = client.post("/queues/forecast", json={"queue_id": 1, "horizon": 5, "granularity": "weekly", "levels": [80, 95]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["values"]) == 5 and [i["level"] for i in body["intervals"]] == [80, 95]
    assert body["model_tag"].startswith("queues-nyc")
    paths = client.get("/docs.json").json()["paths"]
    assert "/queues/forecast" in paths
    api = client.get("/queues/api/openapi.json").json()
    assert {"/queues", "/historical", "/daily_average", "/weekly_average/{queue_id}", "/queue_stats",
            "/upload"} <= set(api["paths"])


@pytest.mark.parametrize("payload, status, message", [
    ({"queue_id": 999, "horizon": 5, "granularity": "weekly"}, 400, "valid ids"),
    ({"queue_id": 1, "horizon": 0, "granularity": "weekly"}, 400, "horizon must be an integer from 1 to 42"),
    ({"queue_id": 1, "horizon": 5, "granularity": "weekly", "levels": [100]}, 400, "strictly between 0 and 100"),
    ({"queue_id": 1, "horizon": 5, "granularity": "monthly"}, 400, "valid granularities"),
    ({"queue_id": 1, "horizon": 5, "granularity": "daily"}, 503, ""),             # not trained in this store
])
def test_bad_forecast_requests(client, payload, status, message):
    r = client.post("/queues/forecast", json=payload)
    assert r.status_code == status and message in r.text, r.text


def test_missing_model_names_the_train_command(client):
    r = client.get("/queues/api/forecast", params={"queue_id": 1, "horizon": 5, "granularity": "daily"})
    assert r.status_code == 503 and "make train" in r.json()["error"]


@pytest.mark.parametrize("content, message", [
    (b"id,day,n\n1,2017-01-01,3\n", "missing column(s)"),
    (b"queueId,date,new_tickets\n1,2017-01-01,-3\n", "below 0"),
    (b"queueId,date,new_tickets\n1,2017-01-01,3\n1,2017-01-01,4\n", "share a key"),
    ("queueId,date,new_tickets\n1,2017-01-01,3\n# caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    (b"queueId,date,new_tickets\n=HYPERLINK(\"x\"),2017-01-01,3\n", "formulas"),
    (b"queueId,date,new_tickets\n" + b"1,2017-01-01,3\n" * 400_000, "over the limit"),
])
def test_hostile_uploads_are_refused_and_nothing_is_written(client, content, message):
    r = client.post("/queues/api/upload", files={"file": ("x.csv", content, "text/csv")}, data={"name": "bad-one"})
    assert r.status_code in (400, 413) and message in r.json()["error"], r.text
    assert client.get("/queues/api/data_status", params={"dataset": "bad-one"}).status_code == 400


def test_good_upload_becomes_a_version_and_forecasts(client):
    days = pd.date_range("2017-01-02", periods=63)
    csv = "queueId,date,new_tickets\n" + "".join(f"{q},{d.date()},{(d.dayofweek + 1) * q}\n"
                                                 for q in (2, 3) for d in days)
    files = {"file": ("t.csv", csv.encode(), "text/csv"),
             "hierarchy": ("h.csv", b"queueId,parentId,name\n1,,All\n2,1,A\n3,1,B\n", "text/csv")}
    r1 = client.post("/queues/api/upload", files=files, data={"name": "team-a"})
    r2 = client.post("/queues/api/upload", files=files, data={"name": "team-a"})
    assert r1.status_code == 200 and "team-a@1" in r1.json()["message"] and "team-a@2" in r2.json()["message"]
    st = client.get("/queues/api/data_status", params={"dataset": "team-a@2"}).json()
    assert (st["queues"], st["leaves"], st["periods"]) == (3, 2, 63)
    r = client.get("/queues/api/forecast", params={"queue_id": 1, "horizon": 7, "dataset": "team-a"})
    assert r.status_code == 200 and [round(v) for v in r.json()["values"]] == [5 * (i + 1) for i in range(7)]
    # the bundled data is untouched
    assert client.get("/queues/api/data_status").json()["dataset"] == "nyc_departures"
    r = client.post("/queues/api/upload", files=files, data={"name": "nyc_departures"})
    assert r.status_code == 400 and "cannot be replaced" in r.json()["error"]


def test_dashboard_callbacks(client):
    "The dashboard's functions through the same backend (gradio_client and a browser run against a served bento)."
    from mlkit.serve import queues_demo as D
    md, hist, wd, wk = D.show_queue("nyc_departures", 3, "weekly", "", "")
    assert "JFK" in md and len(wk.data) == 53 and hist.data[0].y.sum() > 0
    fig, ev = D.run_forecast("nyc_departures", 3, "weekly", 6, "80,95")
    assert "Held-out coverage" in ev and len(fig.data) == 4
    import gradio as gr
    with pytest.raises(gr.Error, match="valid granularities"): D.show_queue("nyc_departures", 3, "hourly", "", "")
    with pytest.raises(gr.Error, match="'x' is not a number"):
        D.run_forecast("nyc_departures", 3, "weekly", 6, "80,x")


@pytest.mark.parametrize("levels, message", [("80,100", "100 is outside (0, 100)"), ("0,95", "0 is outside (0, 100)"),
                                             ("80,80.0", "80.0 is given twice"), ("80,abc", "'abc' is not a number"),
                                             ("", "none given")])
def test_dashboard_refuses_bad_levels_before_the_backend(monkeypatch, levels, message):
    "Issue 10: the page checks the interval levels itself, with a readable message, and never calls the backend."
    import gradio as gr
    from mlkit.serve import queues_demo as D
    calls = []
    class Recorder:
        def forecast(self, *a, **k): calls.append(a); raise AssertionError("the backend was called")
        def data(self, *a, **k): calls.append(a); raise AssertionError("the backend was called")
    monkeypatch.setattr(D, "backend", lambda: Recorder())
    with pytest.raises(gr.Error, match=re.escape(message)): D.run_forecast("nyc_departures", 3, "weekly", 6, levels)
    assert calls == []
    hint, button = D.levels_hint(levels)
    assert message in hint and button.interactive is False


def test_backend_keeps_its_own_level_check(client):
    "The HTTP API (no page in front of it) still refuses levels outside (0, 100)."
    r = client.get("/queues/api/forecast", params={"queue_id": 1, "horizon": 3, "granularity": "weekly",
                                                       "levels": [80, 100]})
    assert r.status_code == 400 and "strictly between 0 and 100" in r.text


def test_queue_forecast_report_renders(tmp_path):
    "The papermill template on small parameters (a weekly forecaster fitted in the report): every section, no code."
    import re
    from conftest import ROOT
    from mlkit.reports import render, template_parameters
    tpl = ROOT / "nbs" / "reports" / "queue_forecast.ipynb"
    assert set(template_parameters(tpl)) == {"dataset", "granularity", "queue_id", "horizon", "h", "n_windows",
                                             "refit", "seed"}
    html = render(tpl, tmp_path / "qf.html",
                  dict(dataset="nyc_departures", granularity="weekly", h=4, n_windows=2, refit=True)).read_text()
    for heading in ("Verdict", "The hierarchy", "History and weekday profile", "Cross-validation per level",
                    "The reconciled forecast with calibrated intervals", "Provenance", "held-out actuals", "BottomUp"):
        assert heading in html, heading
    assert len(re.findall(r"<img", html)) >= 2 and "R.verdict(" not in html
    assert re.search(r"sha256 \| 1e291d3047719930ae7cfc640163f6e72dc835dc664ba7a9008f9747a34407dd",
                     (tmp_path / "qf.ipynb").read_text())


def test_dashboard_over_gradio_client(client):
    "The dashboard served alone, driven with gradio_client (same backend as the API fixture)."
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from conftest import free_port
    from mlkit.serve.queues_demo import demo
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = c.predict("nyc_departures", 3, "weekly", "", "", api_name="/show_queue")
        assert "JFK" in out[0] and "direct children" in out[0]
        with pytest.raises(AppError, match="valid granularities"):
            c.predict("nyc_departures", 3, "hourly", "", "", api_name="/show_queue")
        with pytest.raises(AppError, match="95 is given twice"):
            c.predict("nyc_departures", 3, "weekly", 6, "95,80,95", api_name="/forecast")
    finally: demo.close()

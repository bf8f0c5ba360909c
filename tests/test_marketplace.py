"""Reliability tests of the prediction marketplace (issue 5, seed 001) against a REAL server.

Each server is `python -m mlkit.marketplace.api` (uvicorn) on 127.0.0.1 with a free port, started in a temporary
directory whose settings.ini points the database (a temporary SQLite file, or MLKIT_TEST_POSTGRES_URL), the data and
model directories and the [marketplace] keys at test values; it is stopped by its PID. The tests read the database
directly to check what was (or was not) written.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("MLKIT_TEST_POSTGRES_URL")
ROW = {"age": 50, "bmi": 26.4, "bp": 94, "s1": 190, "s5": 4.6}
TABLES = ("mp_users", "mp_accounts", "mp_models", "mp_predictions", "mp_transactions")


class Server:
    "A marketplace server process in `root` (its own settings.ini); `start`, `kill(sig)`, `stop`."

    def __init__(self, root: Path, db_url: str, model_dir: Path, **marketplace):
        self.root, self.db_url, self.model_dir = root, db_url, model_dir
        self.marketplace = {"lockout_attempts": 3, "lockout_minutes": 1, "max_upload_bytes": 20000, "max_rows": 100,
                            "workers": 2, "lease_seconds": 2, "demo_delay_s": 0, "jwt_secret": uuid.uuid4().hex,
                            **marketplace}
        self.proc, self.port = None, None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self): return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300, **marketplace) -> "Server":
        self.marketplace.update(marketplace)
        ini = ["[paths]", "data_dir = data", f"model_dir = {self.model_dir}", "log_dir = logs", "[database]",
               f"url = {self.db_url}", "[marketplace]", *(f"{k} = {v}" for k, v in self.marketplace.items())]
        (self.root / "settings.ini").write_text("\n".join(ini) + "\n")
        self.port = free_port()
        env = dict(os.environ, MLKIT_DATABASE_URL=self.db_url, MLKIT_PATHS_DATA_DIR=str(self.root / "data"),
                   MLKIT_PATHS_MODEL_DIR=str(self.model_dir))
        self.log = open(self.root / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "mlkit.marketplace.api", "--host", "127.0.0.1",
                                      "--port", str(self.port)],
                                     cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logtext()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200: return self
            except httpx.HTTPError: pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.logtext()[-3000:]}")

    def logtext(self) -> str: return (self.root / f"server-{self.port}.log").read_text()

    def kill(self, sig=signal.SIGKILL):
        os.kill(self.proc.pid, sig)
        self.proc.wait(30)
        self.log.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(15)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait(10)
        self.log.close()


def _sqlite_url(path: Path) -> str: return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    "One model directory for every server: the catalog's models are trained by the first server only."
    return tmp_path_factory.mktemp("mp_models")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("mp_server")
    s = Server(root, _sqlite_url(root / "mp.db"), model_dir).start()
    yield s
    s.stop()


def backend_url(backend: str, root: Path) -> str:
    if backend == "sqlite": return _sqlite_url(root / "mp.db")
    if not PG_URL:
        pytest.skip("no PostgreSQL reachable: set MLKIT_TEST_POSTGRES_URL=postgresql+psycopg://user:pw@host/db "
                    "to run this")
    try: create_engine(PG_URL).connect().close()
    except Exception as e: pytest.fail(f"MLKIT_TEST_POSTGRES_URL is set but unusable: {e}")  # set means: must run
    return PG_URL


def db_counts(db_url: str) -> dict:
    eng = create_engine(db_url)
    with eng.connect() as c:
        out = {t: c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES}
        out["balances"] = c.execute(text("SELECT COALESCE(SUM(balance), 0) FROM mp_accounts")).scalar()
    eng.dispose()
    return out


def account_books(db_url: str, user_id: str) -> dict:
    "Balance (cents), ledger sum (cents) and the ledger's kinds for one user."
    eng = create_engine(db_url)
    with eng.connect() as c:
        aid, bal = c.execute(text("SELECT id, balance FROM mp_accounts WHERE user_id = :u"), {"u": user_id}).one()
        rows = c.execute(text("SELECT kind, amount, prediction_id FROM mp_transactions WHERE account_id = :a"),
                         {"a": aid}).all()
        preds = c.execute(text("SELECT id, status, attempts FROM mp_predictions WHERE user_id = :u"),
                          {"u": user_id}).all()
    eng.dispose()
    return {"balance": bal, "ledger": sum(r[1] for r in rows), "entries": rows, "predictions": preds}


def new_user(base: str, topup: float = 0, password: str = "correct horse battery") -> dict:
    name = f"u{uuid.uuid4().hex[:10]}"
    r = httpx.post(base + "/users", json={"firstname": "T", "username": name, "password": password})
    assert r.status_code == 201, r.text
    tok = httpx.post(base + "/token", data={"username": name, "password": password}).json()["access_token"]
    u = {"username": name, "password": password, "user_id": r.json()["user_id"],
         "h": {"Authorization": f"Bearer {tok}"}}
    if topup:
        assert httpx.post(base + "/account/topup", json={"amount": topup}, headers=u["h"]).status_code == 200
    return u


def wait_status(base: str, h: dict, pid: str, statuses=("completed", "failed"), timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = httpx.get(f"{base}/predict/{pid}", headers=h).json()
        if j["status"] in statuses: return j
        time.sleep(0.1)
    raise AssertionError(f"prediction {pid} still {j['status']} after {timeout} s")


# ---------------------------------------------------------------------------------------------------------------- auth
def test_auth_flows(srv):
    base, pw = srv.url, "correct horse battery"
    name = f"ann{uuid.uuid4().hex[:6]}"
    r = httpx.post(base + "/users", json={"firstname": "Ann", "username": name, "password": pw})
    assert r.status_code == 201 and r.json()["user_id"]
    assert httpx.post(base + "/users", json={"username": name, "password": pw}).status_code == 409
    r = httpx.post(base + "/users", json={"username": "shortpw", "password": "x"})
    assert "password must be" in r.json()["detail"]

    form = httpx.post(base + "/token", data={"username": name, "password": pw})
    js = httpx.post(base + "/token", json={"username": name, "password": pw})
    assert form.status_code == js.status_code == 200 and form.json()["token_type"] == "bearer"
    bearer = {"Authorization": f"Bearer {form.json()['access_token']}"}
    me = httpx.get(base + "/users/me", headers=bearer).json()
    assert (me["username"], me["firstname"], me["balance"]) == (name, "Ann", 0.0)
    # Basic still works
    assert httpx.get(base + "/users/me", auth=(name, pw)).json()["user_id"] == me["user_id"]

    for h in ({}, {"Authorization": "Bearer not.a.jwt"},
              {"Authorization": "Bearer " + form.json()["access_token"][:-3] + "abc"}):
        r = httpx.get(base + "/users/me", headers=h)
        assert r.status_code == 401 and r.json()["detail"]
    assert httpx.get(base + "/users/me", auth=(name, "wrong password")).status_code == 401
    assert httpx.post(base + "/token", data={"username": "nobody-here", "password": pw}).status_code == 401

    # lockout: lockout_attempts=3 failures in a row (the Basic failure above was the first) lock the account
    assert httpx.post(base + "/token", data={"username": name, "password": "wrong"}).status_code == 401
    r = httpx.post(base + "/token", data={"username": name, "password": "wrong"})
    assert r.status_code == 429 and "locked" in r.json()["detail"]
    # even the right one
    r = httpx.post(base + "/token", data={"username": name, "password": pw})
    assert r.status_code == 429 and "locked until" in r.json()["detail"]
    assert httpx.get(base + "/users/me", auth=(name, pw)).status_code == 429
    assert httpx.get(base + "/users/me", headers=bearer).status_code == 200    # an already issued token stays valid


def test_openapi_describes_the_seed_routes(srv):
    doc = httpx.get(srv.url + "/openapi.json").json()
    for path, method in [("/users", "post"), ("/users/me", "get"), ("/token", "post"), ("/account/topup", "post"),
                         ("/models", "get"), ("/predict", "post"), ("/predict/{prediction_id}", "get"),
                         ("/predict/{prediction_id}/download", "get"), ("/predictions", "get")]:
        assert method in doc["paths"][path], (path, method)
    assert {"HTTPBasic", "HTTPBearer"} <= set(doc["components"]["securitySchemes"])
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body) and body["application/json"]["examples"]
    models = httpx.get(srv.url + "/models").json()
    assert [(m["name"], m["cost"]) for m in models] == [("Diabetes progression: linear regression", 10),
                                                        ("Diabetes progression: random forest", 15),
                                                        ("Diabetes progression: CatBoost", 20)]
    for m in models:
        assert [c["name"] for c in m["input_schema"]["columns"]] == ["age", "bmi", "bp", "s1", "s5"]
        assert m["model_card"]["data"]["dataset"] == "diabetes" and m["model_card"]["metrics"]["mae"] > 0


def test_happy_path_json_csv_and_download(srv):
    base, u = srv.url, new_user(srv.url, topup=45)
    a = httpx.post(base + "/predict", json={"model_id": "risk-assessment", "input_data": [ROW, {**ROW, "age": 70}]},
                   headers=u["h"])
    b = httpx.post(base + "/predict", files={"file": ("in.csv", b"age,bmi,bp,s1,s5\n50,26.4,94,190,4.6\n")},
                   data={"model_id": "premium-analysis"}, headers=u["h"])
    c = httpx.post(base + "/predict", json={"model_id": "return-prediction",
                                            "input_data": "age,bmi,bp,s1,s5\n40,22,80,170,4.2\n"}, headers=u["h"])
    assert (a.status_code, b.status_code, c.status_code) == (202, 202, 202)
    ja = wait_status(base, u["h"], a.json()["prediction_id"])
    assert ja["status"] == "completed" and len(ja["output_data"]) == 2 and ja["output_data"][0] != ja["output_data"][1]
    for r in (b, c): assert wait_status(base, u["h"], r.json()["prediction_id"])["status"] == "completed"
    csv = httpx.get(base + ja["download_url"], headers=u["h"])
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "age,bmi,bp,s1,s5,prediction" and len(lines) == 3
    assert [p["model_id"] for p in httpx.get(base + "/predictions", headers=u["h"]).json()] == \
           ["return-prediction", "premium-analysis", "risk-assessment"]
    assert httpx.get(base + "/users/me", headers=u["h"]).json()["balance"] == 0.0
    books = account_books(srv.db_url, u["user_id"])
    assert books["balance"] == books["ledger"] == 0


# ------------------------------------------------------------------------------------------ bad requests write nothing
@pytest.fixture(scope="module")
def ann_and_bobs_job(srv):
    "Ann, who sends the bad requests, and a completed job of Bob's, which Ann must not see."
    ann, bob = new_user(srv.url, topup=100), new_user(srv.url, topup=10)
    pid = httpx.post(srv.url + "/predict", json={"model_id": "risk-assessment", "input_data": ROW},
                     headers=bob["h"]).json()["prediction_id"]
    wait_status(srv.url, bob["h"], pid)
    return ann, bob, pid


RA = "risk-assessment"
BIG_CSV = ("age,bmi,bp,s1,s5\n" + "50,26.4,94,190,4.6\n" * 2000).encode()                   # ~40 kB > 20 kB limit
# (method, path ({pid}: Bob's job), request keywords from Ann's headers H and her JSON headers J, status, message)
BAD_REQUESTS = [
    ("post", "/predict", lambda H, J: dict(content=b'{"model_id": "risk-assessment", "input_data": {', headers=J),
     400, "malformed JSON"),
    ("post", "/predict", lambda H, J: dict(content=b"[1, 2]", headers=J), 422, "body must be a JSON object"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": "age,bmi\n1,2,3\n"}, headers=H),
     422, "malformed CSV"),
    ("post", "/predict", lambda H, J: dict(files={"file": ("x.csv", b"age,bmi,bp,s1,s5\n1,2\n")},
                                           data={"model_id": RA}, headers=H), 422, "malformed CSV"),
    ("post", "/predict", lambda H, J: dict(files={"file": ("x.csv", b"\xff\xfe\x00")}, data={"model_id": RA},
                                           headers=H), 422, "not UTF-8"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": {"age": 50, "bmi": 26, "weight": 80}},
                                           headers=H),
     422, "expected columns ['age', 'bmi', 'bp', 's1', 's5'], got ['age', 'bmi', 'weight']; "
          "missing ['bp', 's1', 's5']; unexpected ['weight']"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": {**ROW, "age": "old"}}, headers=H),
     422, "expected a finite number"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": {**ROW, "bmi": 400}}, headers=H),
     422, "outside the valid range"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": [ROW] * 101}, headers=H),
     413, "too many rows"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": 5}, headers=H), 422, "got int"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": "no-such-model", "input_data": ROW}, headers=H),
     404, "unknown model_id"),
    ("post", "/predict", lambda H, J: dict(files={"file": ("big.csv", BIG_CSV)}, data={"model_id": RA}, headers=H),
     413, "over the limit"),
    ("post", "/predict", lambda H, J: dict(json={"model_id": RA, "input_data": ROW}), 401, "authentication required"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": -10}, headers=H), 422, "positive"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": 0}, headers=H), 422, "positive"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": 1e12}, headers=H), 422, "over the limit"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": "NaN"}, headers=H), 422, "finite"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": "ten"}, headers=H), 422, "must be a number"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": True}, headers=H), 422, "must be a number"),
    ("post", "/account/topup", lambda H, J: dict(json={"amount": 1.234}, headers=H), 422, "2 decimal places"),
    ("post", "/account/topup", lambda H, J: dict(json={}, headers=H), 422, "amount"),
    ("get", "/predict/{pid}", lambda H, J: dict(headers=H), 404, "no prediction"),          # Bob's job, asked by Ann
    ("get", "/predict/{pid}/download", lambda H, J: dict(headers=H), 404, "no prediction"),
    ("get", f"/predict/{uuid.uuid4()}", lambda H, J: dict(headers=H), 404, "no prediction"),
    ("post", "/users", lambda H, J: dict(json={"username": "a b", "password": "correct horse"}), 422,
     "username must be"),
]


@pytest.mark.parametrize("method, path, kw, status, msg", BAD_REQUESTS,
                         ids=[f"{i:02d}-{c[1].split('/')[1]}-{c[3]}-{c[4][:30]}" for i, c in enumerate(BAD_REQUESTS)])
def test_bad_request_gets_4xx_and_writes_nothing(srv, ann_and_bobs_job, method, path, kw, status, msg):
    "One bad request: its status, a message naming the problem, and no row written or balance changed."
    ann, _, pid = ann_and_bobs_job
    kw, url = kw(ann["h"], {**ann["h"], "Content-Type": "application/json"}), srv.url + path.format(pid=pid)
    before = db_counts(srv.db_url)
    r = getattr(httpx, method)(url, **kw) if "files" not in kw and "content" not in kw else \
        httpx.request(method.upper(), url, **kw)
    assert r.status_code == status, (path, kw.get("json"), r.status_code, r.text[:300])
    assert msg in str(r.json()["detail"]), (path, r.json())
    assert db_counts(srv.db_url) == before                                                        # nothing written


def test_refused_requests_leave_the_owner_their_job(srv, ann_and_bobs_job):
    _, bob, pid = ann_and_bobs_job
    # the owner still sees it
    assert httpx.get(srv.url + f"/predict/{pid}", headers=bob["h"]).status_code == 200


# ----------------------------------------------------------------------------------------------- concurrent charges
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_200_concurrent_predictions_50_paid(backend, srv, tmp_path, model_dir):
    if backend == "sqlite": server = srv
    else: server = Server(tmp_path, backend_url(backend, tmp_path), model_dir).start()
    try:
        # pays for 50 linear-regression jobs at 10
        base, u = server.url, new_user(server.url, topup=500)
        balances, stop = [], threading.Event()

        def watch():
            with httpx.Client(headers=u["h"]) as c:
                while not stop.is_set(): balances.append(c.get(base + "/users/me").json()["balance"])

        watcher = threading.Thread(target=watch); watcher.start()
        with (httpx.Client(headers=u["h"], timeout=60, limits=httpx.Limits(max_connections=64)) as c,
              ThreadPoolExecutor(64) as ex):
            rs = list(ex.map(lambda i: c.post(base + "/predict", json={"model_id": "risk-assessment",
                                                                       "input_data": {**ROW, "age": 20 + i % 50}}),
                             range(200)))
        stop.set(); watcher.join()
        codes = [r.status_code for r in rs]
        assert codes.count(202) == 50 and codes.count(402) == 150, {s: codes.count(s) for s in set(codes)}
        assert all("insufficient balance" in r.json()["detail"] for r in rs if r.status_code == 402)
        assert balances and min(balances) >= 0
        ids = [r.json()["prediction_id"] for r in rs if r.status_code == 202]
        for pid in ids: assert wait_status(base, u["h"], pid)["status"] == "completed"
        books = account_books(server.db_url, u["user_id"])
        kinds = [e[0] for e in books["entries"]]
        assert books["balance"] == books["ledger"] == 0
        assert (kinds.count("topup"), kinds.count("charge"), kinds.count("refund")) == (1, 50, 0)
        # one charge per accepted job
        assert sorted(e[2] for e in books["entries"] if e[0] == "charge") == sorted(ids)
        assert len(books["predictions"]) == 50 and {p[1] for p in books["predictions"]} == {"completed"}
        assert httpx.get(base + "/users/me", headers=u["h"]).json()["balance"] == 0.0
    finally:
        if server is not srv: server.stop()


# ------------------------------------------------------------------------------------------------ crash and resume
def test_sigkill_mid_job_then_restart_completes_it_once(tmp_path, model_dir):
    db = _sqlite_url(tmp_path / "mp.db")
    server = Server(tmp_path, db, model_dir, demo_delay_s=30, lease_seconds=1.5).start()
    try:
        u = new_user(server.url, topup=30)
        pid = httpx.post(server.url + "/predict", json={"model_id": "premium-analysis", "input_data": ROW},
                         headers=u["h"]).json()["prediction_id"]
        wait_status(server.url, u["h"], pid, statuses=("running",), timeout=20)
        time.sleep(2.5)          # well past one lease: the heartbeat must keep it alive while the worker lives
        assert httpx.get(f"{server.url}/predict/{pid}", headers=u["h"]).json()["attempts"] == 1
        server.kill(signal.SIGKILL)                                             # mid-job: 30 s sleep in progress
        mid = account_books(db, u["user_id"])
        assert mid["predictions"][0][1] == "running" and mid["balance"] == 1000   # charged, not finished
        server.start(demo_delay_s=0)                                            # the restart resumes it after its lease
        j = wait_status(server.url, u["h"], pid, timeout=30)
        assert (j["status"], j["attempts"], len(j["output_data"])) == ("completed", 2, 1)
        books = account_books(db, u["user_id"])
        assert books["balance"] == books["ledger"] == 1000
        assert sorted(e[0] for e in books["entries"]) == ["charge", "topup"]                    # charged exactly once
        assert db_counts(db)["mp_predictions"] == 1
    finally:
        server.stop()


def test_job_that_keeps_crashing_its_worker_fails_with_refund(tmp_path, model_dir):
    db = _sqlite_url(tmp_path / "mp.db")
    server = Server(tmp_path, db, model_dir, demo_delay_s=30, lease_seconds=1, max_attempts=1).start()
    try:
        u = new_user(server.url, topup=20)
        pid = httpx.post(server.url + "/predict", json={"model_id": "return-prediction", "input_data": ROW},
                         headers=u["h"]).json()["prediction_id"]
        wait_status(server.url, u["h"], pid, statuses=("running",), timeout=20)
        server.kill(signal.SIGKILL)
        server.start()                                    # attempt 2 > max_attempts=1: failed and refunded, not re-run
        j = wait_status(server.url, u["h"], pid, timeout=30)
        assert j["status"] == "failed" and "gave up after 1 interrupted attempt" in j["error"]
        books = account_books(db, u["user_id"])
        assert books["balance"] == books["ledger"] == 2000
        assert sorted(e[0] for e in books["entries"]) == ["charge", "refund", "topup"]
        assert httpx.get(f"{server.url}/predict/{pid}/download", headers=u["h"]).status_code == 409
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------------- migrations
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_declared_schema(backend, tmp_path):
    "alembic upgrade head on an empty database gives the tables the code declares (compare_metadata finds nothing)."
    from alembic import command

    from mlkit.marketplace.tables import _alembic_config, schema_diff, upgrade_db
    url = backend_url(backend, tmp_path)
    assert upgrade_db(url) == "0005"
    assert schema_diff(url) == []
    if backend == "sqlite":                       # down and up again (never on a shared PostgreSQL database)
        command.downgrade(_alembic_config(url), "base")
        with create_engine(url).connect() as c:
            assert not [n for (n,) in c.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
                        if n.startswith("mp_") and n != "mp_alembic_version"]
        assert upgrade_db(url) == "0005" and schema_diff(url) == []


SEED_001 = {"risk-assessment": ("Risk Assessment", 10, "Linear regression: a progression (risk) score from age, BMI, "
                                                       "blood pressure and two serum measurements."),
            "return-prediction": ("Return Prediction", 15, "Random forest (200 trees): the same score with non-linear "
                                                           "effects and interactions."),
            "premium-analysis": ("Premium Analysis", 20,
                                 "CatBoost gradient boosting: the most flexible model of the three.")}


def test_migration_0005_names_the_models_for_what_they_predict(tmp_path):
    "A 0004 catalog under seed 001's names is renamed in place (ids, prices, history kept); the downgrade restores it."
    from alembic import command

    from mlkit.marketplace.catalog import BUILTIN
    from mlkit.marketplace.tables import _alembic_config, upgrade_db
    url = _sqlite_url(tmp_path / "v4.db")
    assert upgrade_db(url, "0004") == "0004"
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO mp_users VALUES ('u', '', 'u', 'x', 0, NULL, '2026-11-27 00:00:00')"))
        for mid, (name, cost, desc) in SEED_001.items():
            if mid == "premium-analysis": name = "Our own name"                     # renamed by hand: left alone
            c.execute(text("INSERT INTO mp_models VALUES (:i, :n, :c, :d, '{}', '{}', '{}', 'm.joblib', 1, "
                           "'2026-11-27 00:00:00')"), {"i": mid, "n": name, "c": cost, "d": desc})
        c.execute(text("INSERT INTO mp_predictions (id, user_id, model_id, status, input_data, n_rows, cost, "
                       "created_at, attempts) VALUES ('p1', 'u', 'risk-assessment', 'pending', '{}', 1, 10, "
                       "'2026-11-27 00:00:00', 0)"))

    def catalog():
        with eng.connect() as c:
            return c.execute(text("SELECT id, name, cost, description FROM mp_models ORDER BY cost")).all()

    def history():
        with eng.connect() as c:
            return c.execute(text("SELECT p.id, m.id, m.cost FROM mp_predictions p JOIN mp_models m "
                                  "ON m.id = p.model_id")).all()

    assert upgrade_db(url) == "0005"
    new = {b["id"]: (b["name"], b["description"]) for b in BUILTIN}
    assert [(i, n, d) for i, n, _, d in catalog()] == [
        ("risk-assessment", *new["risk-assessment"]), ("return-prediction", *new["return-prediction"]),
        ("premium-analysis", "Our own name", new["premium-analysis"][1])]
    assert [n for _, n, _, _ in catalog()][:2] == ["Diabetes progression: linear regression",
                                                   "Diabetes progression: random forest"]
    assert history() == [("p1", "risk-assessment", 10)]                      # the history points at the same model
    command.downgrade(_alembic_config(url), "0004")
    assert [(i, n, int(c), d) for i, n, c, d in catalog()] == [
        (i, "Our own name" if i == "premium-analysis" else n, c, d) for i, (n, c, d) in SEED_001.items()]
    assert history() == [("p1", "risk-assessment", 10)]
    assert upgrade_db(url) == "0005" and catalog()[0][1] == "Diabetes progression: linear regression"
    eng.dispose()

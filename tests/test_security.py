"""Security of the prediction marketplace (issue 9): hostile input, log-in abuse, user names, idempotent money routes,
OAuth2 refresh tokens, cookies. In process: the real FastAPI app (`create_app`) on a temporary SQLite database through
Starlette's TestClient (its lifespan starts the job workers), no mocks. Each test was written to fail on the code
before its fix.
"""
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from mlkit.core import settings
from mlkit.marketplace import auth
from mlkit.marketplace.api import create_app
from mlkit.marketplace.crypto import new_key_entry, reencrypt, unseal
from mlkit.marketplace.errors import Busy

ROW = {"age": 50, "bmi": 26.4, "bp": 94, "s1": 190, "s5": 4.6}
IN, OUT, ERR = (f"mp_predictions.{c}" for c in ("input_data", "result", "error_detail"))
PW = "correct horse battery"


@pytest.fixture(scope="module")
def mp_settings():
    "Test values for the [marketplace] keys (the module-level settings are a plain dict of strings)."
    section = settings.values.setdefault("marketplace", {})
    saved = dict(section)
    section.update(jwt_secret=uuid.uuid4().hex, encryption_keys=new_key_entry("k0"), encryption_key_id="",
                   lockout_attempts="3", lockout_minutes="1", ip_attempts="1000", name_attempts="1000",
                   max_upload_bytes="20000", max_rows="100", workers="1", demo_delay_s="0")
    yield section
    section.clear(); section.update(saved)


@pytest.fixture(scope="module")
def app_url(mp_settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    url = f"sqlite:///{root / 'mp.db'}"
    app = create_app(url, model_dir=root / "models", workers=1)
    with TestClient(app) as c:
        yield c, url, root / "mp.db"


@pytest.fixture()
def client(app_url): return app_url[0]


def _user(c, topup=0):
    name = f"u{uuid.uuid4().hex[:8]}"
    assert c.post("/users", json={"username": name, "password": PW}).status_code == 201
    tok = c.post("/token", data={"username": name, "password": PW}).json()
    h = {"Authorization": f"Bearer {tok['access_token']}"}
    if topup: assert c.post("/account/topup", json={"amount": topup}, headers=h).status_code == 200
    return {"name": name, "h": h, "refresh": tok.get("refresh_token")}


# ------------------------------------------------------------------------------------------------ defect 4: user names
def test_user_names_are_canonical_and_matched_in_full(client):
    base = f"alice{uuid.uuid4().hex[:6]}"
    assert client.post("/users", json={"username": base.capitalize(), "password": PW}).status_code == 201
    for twin in (base, base.upper(), "".join(chr(ord(ch) + 0xFEE0) for ch in base)):   # lower, upper, full-width
        r = client.post("/users", json={"username": twin, "password": PW})
        assert r.status_code == 409 and "already taken" in r.json()["detail"], twin
    assert client.post("/token", data={"username": base.upper(), "password": PW}).status_code == 200
    for bad in ("carol\n", "carol\r\n", "\u0430nn" + base[:4], "bob smith"):                # Cyrillic a: a look-alike
        r = client.post("/users", json={"username": bad, "password": PW})
        assert r.status_code == 422 and "username must be" in r.json()["detail"], bad


# ------------------------------------------------------------------------------------ defect 2: 500s from user input
def test_token_of_a_deleted_user_is_401_not_500(app_url):
    c, url, _ = app_url
    u = _user(c, topup=50)
    eng = create_engine(url)
    with eng.begin() as conn:                                  # the user vanishes; its signed token stays valid
        uid = conn.execute(text("SELECT id FROM mp_users WHERE username = :n"), {"n": u["name"]}).scalar()
        acc = conn.execute(text("SELECT id FROM mp_accounts WHERE user_id = :u"), {"u": uid}).scalar()
        conn.execute(text("DELETE FROM mp_transactions WHERE account_id = :a"), {"a": acc})
        conn.execute(text("DELETE FROM mp_accounts WHERE id = :a"), {"a": acc})
        conn.execute(text("DELETE FROM mp_users WHERE id = :u"), {"u": uid})
    eng.dispose()
    r = c.post("/predict", json={"model_id": "risk-assessment", "input_data": ROW}, headers=u["h"])
    assert r.status_code == 401 and "no longer exists" in r.json()["detail"]
    assert c.get("/users/me", headers=u["h"]).status_code == 401
    assert c.post("/account/topup", json={"amount": 5}, headers=u["h"]).status_code == 401
    assert c.get("/models").status_code == 200                 # still serving


HOSTILE = [  # (what, method, path, request kwargs) -- each must be a 4xx with a JSON message
    ("NaN amount", "post", "/account/topup", {"content": b'{"amount": NaN}'}),
    ("Infinity amount", "post", "/account/topup", {"content": b'{"amount": Infinity}'}),
    ("1e999 in a row", "post", "/predict",
     {"content": b'{"model_id": "risk-assessment", "input_data": {"age": 1e999}}'}),
    ("huge int amount", "post", "/account/topup", {"content": b'{"amount": 123456789012345678901234567890}'}),
    ("huge int in a row", "post", "/predict",
     {"content": b'{"model_id": "risk-assessment", "input_data": {"age": 99999999999999999999999}}'}),
    ("5000-digit int", "post", "/account/topup", {"content": b'{"amount": ' + b"9" * 5000 + b"}"}),
    ("huge offset", "get", "/predictions?offset=99999999999999999999", {}),
    ("huge limit", "get", "/account/transactions?limit=99999999999999999999999999", {}),
    ("surrogate user name", "post", "/users", {"content": b'{"username": "ann\\ud800", "password": "correct horse"}'}),
    ("surrogate password", "post", "/users",
     {"content": b'{"username": "surrogate1", "password": "correct \\udc00horse"}'}),
    ("surrogate token log-in", "post", "/token", {"content": b'{"username": "x\\ud800", "password": "y\\ud800"}',
                                                  "headers": {"content-type": "application/json"}}),
    ("surrogate model id", "post", "/predict", {"content": b'{"model_id": "risk\\ud800", "input_data": {}}'}),
    ("deep nesting", "post", "/predict",
     {"content": b'{"model_id": "risk-assessment", "input_data": ' + b"[" * 5000 + b"]" * 5000 + b"}"}),
    ("CSV of separators", "post", "/predict", {"json": {"model_id": "risk-assessment", "input_data": ",,,,\n,,,,\n"}}),
    ("CSV of a quote", "post", "/predict", {"json": {"model_id": "risk-assessment", "input_data": '"'}}),
    ("CSV of blank lines", "post", "/predict", {"json": {"model_id": "risk-assessment", "input_data": "\n\n \n,\n"}}),
    ("CSV upload of separators", "post", "/predict",
     {"data": {"model_id": "risk-assessment"}, "files": {"file": ("x.csv", b";;;\n;;\n")}}),
    ("CSV upload of a quote", "post", "/predict",
     {"data": {"model_id": "risk-assessment"}, "files": {"file": ("x.csv", b'"')}}),
]


@pytest.mark.parametrize("what,method,path,kw", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_a_4xx_with_a_json_message(client, what, method, path, kw):
    u = _user(client, topup=30)
    kw = {**kw, "headers": {"content-type": "application/json", **u["h"], **kw.get("headers", {})}}
    if "files" in kw: kw["headers"].pop("content-type")
    r = getattr(client, method)(path, **kw)
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:300])
    assert isinstance(r.json()["detail"], (str, list)) and r.json()["detail"]
    assert len(r.text) < 2000                                  # what is echoed is cut short
    assert client.get("/users/me", headers=u["h"]).json()["balance"] == 30.0     # nothing charged; still answering


# --------------------------------------------------------------------------------------------- defect 3: log-in abuse
def test_parallel_guesses_get_at_most_the_allowed_checks(client):
    u = _user(client)
    def guess(pw):
        return client.post("/token", data={"username": u["name"], "password": pw}).status_code
    with ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(guess, [f"guess {i}" for i in range(40)] + [PW]))
    # lockout_attempts=3: the 3rd failure already answers 429
    assert codes.count(401) == 2 and codes.count(200) == 0, codes
    assert set(codes) <= {401, 429, 503}


def test_known_and_unknown_names_get_the_same_answers(client):
    known, unknown = _user(client)["name"], f"nobody{uuid.uuid4().hex[:6]}"
    answers = {}
    for name in (known, unknown):
        rs = [client.post("/token", data={"username": name, "password": "wrong password"}) for _ in range(5)]
        answers[name] = [(r.status_code, r.json()["detail"].split(": locked until")[0]) for r in rs]
    assert answers[known] == answers[unknown] and answers[known][0][0] == 401 and answers[known][-1][0] == 429


def test_a_stranger_does_not_lock_the_owner_out_and_one_address_is_throttled(app_url, mp_settings, monkeypatch):
    c, *_ = app_url
    u = _user(c)
    stranger = TestClient(c.app, client=("203.0.113.9", 4000))
    stranger.portal = c.portal                                 # the same running app and event loop
    for _ in range(5): stranger.post("/token", data={"username": u["name"], "password": "wrong"})
    assert stranger.post("/token", data={"username": u["name"], "password": PW}).status_code == 429
    assert c.post("/token", data={"username": u["name"], "password": PW}).status_code == 200   # the owner, elsewhere
    monkeypatch.setitem(mp_settings, "ip_attempts", "4")
    spray = TestClient(c.app, client=("203.0.113.77", 4000)); spray.portal = c.portal
    codes = [spray.post("/token", data={"username": f"n{i}{uuid.uuid4().hex[:4]}", "password": "x" * 8}).status_code
             for i in range(6)]
    assert codes[:3] == [401] * 3 and codes[-1] == 429, codes  # many names from one address: throttled by the address


def test_argon2_runs_on_a_bounded_pool_of_its_own(client):
    u = _user(client)
    auth.hash_password("warm the pool up")
    pool, slots = auth._pool
    n = slots._initial_value
    release = threading.Event()
    holders = [threading.Thread(target=auth._on_hash_pool, args=(release.wait, 30)) for _ in range(n)]
    for t in holders: t.start()
    time.sleep(0.5)
    try:
        with pytest.raises(Busy, match="too many log-ins in progress"):
            auth._on_hash_pool(lambda: None)
        r = client.post("/token", data={"username": u["name"], "password": PW})
        assert r.status_code == 503 and r.headers["retry-after"]      # a flood is refused at once, not queued
        assert client.get("/users/me", headers=u["h"]).status_code == 200   # token requests are not starved
    finally:
        release.set()
        for t in holders: t.join(30)
    assert client.post("/token", data={"username": u["name"], "password": PW}).status_code == 200


# ------------------------------------------------------------------------------------------------ defect 7: small ones
def test_idempotency_key_credits_and_charges_once(client):
    u = _user(client)
    h = {**u["h"], "Idempotency-Key": "topup-" + uuid.uuid4().hex}
    a = client.post("/account/topup", json={"amount": 25}, headers=h)
    b = client.post("/account/topup", json={"amount": 25}, headers=h)
    assert a.status_code == b.status_code == 200 and a.json()["balance"] == b.json()["balance"] == 25.0
    assert client.post("/account/topup", json={"amount": 30}, headers=h).status_code == 409
    h = {**u["h"], "Idempotency-Key": "predict-" + uuid.uuid4().hex}
    p1 = client.post("/predict", json={"model_id": "risk-assessment", "input_data": ROW}, headers=h)
    p2 = client.post("/predict", json={"model_id": "risk-assessment", "input_data": ROW}, headers=h)
    assert p1.status_code == p2.status_code == 202 and p1.json()["prediction_id"] == p2.json()["prediction_id"]
    assert client.get("/users/me", headers=u["h"]).json()["balance"] == 15.0
    kinds = [t["kind"] for t in client.get("/account/transactions", headers=u["h"]).json()]
    assert sorted(kinds) == ["charge", "topup"]
    r = client.post("/account/topup", json={"amount": 1}, headers={**u["h"], "Idempotency-Key": "bad key"})
    assert r.status_code == 422


@pytest.mark.parametrize("amount", ["1_000", "\u0661\u0660\u0660", "\uff11\uff10\uff10", "1e2", " 1 0 ", "0x10"])
def test_amounts_are_ascii_decimals_only(client, amount):
    u = _user(client)
    r = client.post("/account/topup", json={"amount": amount}, headers=u["h"])
    assert r.status_code == 422 and "ASCII digits" in r.json()["detail"]
    assert client.get("/users/me", headers=u["h"]).json()["balance"] == 0.0


def test_error_messages_cut_what_they_echo(client):
    u = _user(client)
    long = "x" * 5000
    for r in (client.post("/account/topup", json={"amount": long}, headers=u["h"]),
              client.post("/predict", json={"model_id": long, "input_data": ROW}, headers=u["h"]),
              client.post("/predict", json={"model_id": "risk-assessment", "input_data": {**ROW, "age": long}},
                          headers=u["h"])):
        assert 400 <= r.status_code < 500 and len(r.json()["detail"]) < 600, r.text[:200]


def test_an_internal_errors_log_quotes_nothing_of_the_request(client, monkeypatch, tmp_path):
    "A route that crashes with a message quoting the request: 500 'internal error'; the log names the route and type."
    import logging
    from mlkit.core import JsonFormatter
    from mlkit.marketplace import jobs
    u = _user(client)
    secret = f"s3cret-{uuid.uuid4().hex}"
    def crash(engine, user_id, prediction_id): raise RuntimeError(f"cannot read {prediction_id}")
    monkeypatch.setattr(jobs, "get_prediction", crash)
    h = logging.FileHandler(tmp_path / "mlkit.log", encoding="utf-8")     # as the configured log file formats it
    h.setFormatter(JsonFormatter()); h.setLevel(logging.DEBUG)
    log = logging.getLogger("mlkit"); level = log.level
    log.addHandler(h); log.setLevel(logging.DEBUG)                      # the frames logged at DEBUG are checked too
    try:   # the fixture's client re-raises server errors; this one gets what a remote client gets
        r = TestClient(client.app, raise_server_exceptions=False).get(f"/predict/{secret}", headers=u["h"])
    finally: log.removeHandler(h); log.setLevel(level); h.close()
    logged = (tmp_path / "mlkit.log").read_text(encoding="utf-8")
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}, r.text
    assert "marketplace request failed: GET /predict/{prediction_id}: internal error (RuntimeError)" in logged, logged
    assert secret not in logged, logged


# ------------------------------------------------------------------------------------ seed 000: encryption at rest
def _completed(c, h, row, model="risk-assessment") -> dict:
    pid = c.post("/predict", json={"model_id": model, "input_data": row}, headers=h).json()["prediction_id"]
    deadline = time.monotonic() + 60
    while (j := c.get(f"/predict/{pid}", headers=h).json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, j
        time.sleep(0.05)
    assert j["status"] == "completed", j
    return j


def _raw(db_url, pid) -> tuple:
    with create_engine(db_url).connect() as c:
        return c.execute(text("SELECT input_data, result FROM mp_predictions WHERE id = :i"), {"i": pid}).one()


def test_the_database_holds_no_plaintext_of_a_prediction(app_url):
    "Neither the SQLite file (and its WAL) nor a raw SELECT of the columns shows a submitted row or its prediction."
    c, db_url, db_path = app_url
    u = _user(c, topup=20)
    row = {"age": 47.3141, "bmi": 29.2718, "bp": 101.1618, "s1": 203.5772, "s5": 4.6692}   # values found nowhere else
    j = _completed(c, u["h"], row)
    assert j["input_data"] == [row] and len(j["output_data"]) == 1        # the owner reads it back in clear
    secrets_ = [str(v) for v in row.values()] + [repr(j["output_data"][0])]
    raw_cols = " ".join(map(str, _raw(db_url, j["prediction_id"])))
    files = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))   # mp.db, mp.db-wal, mp.db-shm
    leaks = [v for v in secrets_ if v in raw_cols or v.encode() in files]
    assert not leaks, f"plaintext in the database: {leaks}"
    assert '"kid": "k0"' in raw_cols.replace("'", '"')
    csv = c.get(f"/predict/{j['prediction_id']}/download", headers=u["h"])
    assert csv.status_code == 200 and "29.2718" in csv.text                # the CSV download still decrypts


def test_key_rotation_and_reencrypt(app_url, mp_settings, monkeypatch):
    c, db_url, _ = app_url
    u = _user(c, topup=20)
    k0 = mp_settings["encryption_keys"]
    old = _completed(c, u["h"], ROW)
    k1 = new_key_entry("k1")
    monkeypatch.setitem(mp_settings, "encryption_keys", f"{k0},{k1}")        # k1 is the newest: it writes
    new = _completed(c, u["h"], {**ROW, "age": 61})
    assert [_raw(db_url, j["prediction_id"])[0].count('"kid": "k0"') for j in (old, new)] == [1, 0]
    assert c.get(f"/predict/{old['prediction_id']}", headers=u["h"]).json()["input_data"] == [ROW]   # k0 still reads
    with create_engine(db_url).connect() as conn:
        n_k0 = conn.execute(text("SELECT COUNT(*) FROM mp_predictions "
                                 "WHERE input_data LIKE '%\"kid\": \"k0\"%'")).scalar()
    assert n_k0 >= 1 and reencrypt(db_url, batch=2) == {"k0": n_k0}
    assert reencrypt(db_url) == {}                                           # nothing left under an old key
    monkeypatch.setitem(mp_settings, "encryption_keys", k1)                  # k0 retired
    assert c.get(f"/predict/{old['prediction_id']}", headers=u["h"]).json()["input_data"] == [ROW]
    monkeypatch.setitem(mp_settings, "encryption_keys", k0)                  # k1 missing: a clear error naming it
    r = c.get(f"/predict/{old['prediction_id']}", headers=u["h"])
    assert r.status_code == 503 and "key id 'k1'" in r.json()["detail"]
    monkeypatch.setitem(mp_settings, "encryption_keys", f"{k0},{k1}")
    with pytest.raises(Exception, match="key id 'k1'"):
        monkeypatch.setitem(mp_settings, "encryption_keys", k0); reencrypt(db_url)


def test_tampered_ciphertext_is_a_clear_error(app_url):
    """A stored value altered in the database fails AES-GCM's tag: a 409 with a JSON message, the connection stays
    usable."""
    import json as _json
    c, db_url, _ = app_url
    u = _user(c, topup=20)
    j = _completed(c, u["h"], ROW)
    env = _json.loads(_raw(db_url, j["prediction_id"])[1])
    env["ct"] = ("A" if env["ct"][0] != "A" else "B") + env["ct"][1:]      # one altered byte of the result
    with create_engine(db_url).begin() as conn:
        conn.execute(text("UPDATE mp_predictions SET result = :r WHERE id = :i"),
                     {"r": _json.dumps(env), "i": j["prediction_id"]})
    for path in (f"/predict/{j['prediction_id']}", f"/predict/{j['prediction_id']}/download"):
        r = c.get(path, headers=u["h"])
        assert r.status_code == 409 and "failed its integrity check" in r.json()["detail"], r.text[:300]
    # the job list does not decrypt: still served
    assert c.get("/predictions", headers=u["h"]).status_code == 200
    assert c.get("/users/me", headers=u["h"]).status_code == 200


def test_migration_0003_encrypts_rows_stored_in_clear(mp_settings, tmp_path):
    import json as _json
    import sqlite3
    from mlkit.marketplace.tables import Prediction, upgrade_db
    from mlkit.db import session_scope
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert upgrade_db(url, "0002") == "0002"
    con = sqlite3.connect(tmp_path / "old.db")                              # a 0002 database with a row in clear
    con.execute("INSERT INTO mp_predictions (id, user_id, model_id, status, input_data, n_rows, result, cost, "
                "created_at, attempts) "
                "VALUES ('p1', 'u', 'm', 'completed', ?, 1, ?, 10, '2026-11-27 00:00:00', 1)",
                (_json.dumps([ROW]), _json.dumps({"predictions": [151.5]})))
    con.commit(); con.close()
    assert upgrade_db(url) == "0005"
    raw = _raw(url, "p1")
    assert "26.4" not in raw[0] and "151.5" not in raw[1] and '"enc": "A256GCM"' in raw[0]
    with session_scope(url) as s:
        p = s.get(Prediction, "p1")
        assert (unseal(p.input_data, IN, "p1"), unseal(p.result, OUT, "p1")) == ([ROW], {"predictions": [151.5]})


def test_migration_0004_binds_envelopes_to_rows_and_seals_error_messages(mp_settings, tmp_path):
    "A 0003 database (envelopes bound to their column only, failure messages in clear) is converted in place."
    import json as _json
    import sqlite3
    from mlkit.marketplace.crypto import keyring
    from mlkit.marketplace.tables import Prediction, upgrade_db
    from mlkit.db import session_scope
    url = f"sqlite:///{tmp_path / 'v3.db'}"
    assert upgrade_db(url, "0003") == "0003"
    ring = keyring()
    con = sqlite3.connect(tmp_path / "v3.db")
    con.execute("INSERT INTO mp_users VALUES ('u', '', 'u', 'x', 0, NULL, '2026-11-27 00:00:00')")
    con.execute("INSERT INTO mp_models VALUES ('m', 'M', 10, '', '{}', '{}', '{}', 'm.joblib', 1, "
                "'2026-11-27 00:00:00')")
    ins = ("INSERT INTO mp_predictions (id, user_id, model_id, status, input_data, n_rows, result, error, cost, "
           "created_at, attempts) VALUES (?, 'u', 'm', ?, ?, 1, ?, ?, 10, '2026-11-27 00:00:00', 1)")
    con.execute(ins, ("p1", "completed", _json.dumps(ring.encrypt([ROW], IN)),
                      _json.dumps(ring.encrypt({"predictions": [151.5]}, OUT)), None))
    con.execute(ins, ("p2", "failed", _json.dumps(ring.encrypt([ROW], IN)), None,
                      "row 0, column 'bmi': 26.4 is outside the valid range"))
    con.execute(ins, ("p3", "failed", _json.dumps(ring.encrypt([ROW], IN)), None,
                      "gave up after 3 interrupted attempts; the charge is refunded"))
    con.commit(); con.close()
    assert upgrade_db(url) == "0005"
    with session_scope(url) as s:
        p1, p2, p3 = (s.get(Prediction, i) for i in ("p1", "p2", "p3"))
        assert (unseal(p1.input_data, IN, "p1"), unseal(p1.result, OUT, "p1")) == ([ROW], {"predictions": [151.5]})
        assert p1.input_data["v"] == 2 and unseal(p1.input_data, IN, "p2").reason == "tampered"
        assert "26.4" not in p2.error and unseal(p2.error_detail, ERR, "p2").endswith("26.4 is outside the valid range")
        assert p3.error.startswith("gave up after 3") and p3.error_detail is None
    assert "26.4 is outside" not in (tmp_path / "v3.db").read_bytes().decode("latin-1")
    from alembic import command
    from mlkit.marketplace.tables import _alembic_config
    command.downgrade(_alembic_config(url), "0003")                          # the downgrade restores the messages
    with create_engine(url).connect() as c:
        assert c.execute(text("SELECT error FROM mp_predictions WHERE id = 'p2'")).scalar().endswith("valid range")
        assert '"v"' not in c.execute(text("SELECT input_data FROM mp_predictions WHERE id = 'p1'")).scalar()
    assert upgrade_db(url) == "0005"


def test_swapped_ciphertexts_are_detected(app_url):
    "Two users' jobs: their input and result envelopes exchanged in the database fail their tags (409) for both owners."
    c, db_url, _ = app_url
    u, v = _user(c, topup=20), _user(c, topup=20)
    a, b = _completed(c, u["h"], ROW), _completed(c, v["h"], {**ROW, "age": 61})
    ra, rb = _raw(db_url, a["prediction_id"]), _raw(db_url, b["prediction_id"])
    with create_engine(db_url).begin() as conn:
        for (inp, res), pid in ((rb, a["prediction_id"]), (ra, b["prediction_id"])):
            conn.execute(text("UPDATE mp_predictions SET input_data = :i, result = :r WHERE id = :p"),
                         {"i": inp, "r": res, "p": pid})
    for j, h in ((a, u["h"]), (b, v["h"])):
        r = c.get(f"/predict/{j['prediction_id']}", headers=h)
        assert r.status_code == 409 and "failed its integrity check" in r.json()["detail"], r.text[:300]
    with create_engine(db_url).begin() as conn:                              # put them back: both read again
        for (inp, res), pid in ((ra, a["prediction_id"]), (rb, b["prediction_id"])):
            conn.execute(text("UPDATE mp_predictions SET input_data = :i, result = :r WHERE id = :p"),
                         {"i": inp, "r": res, "p": pid})
    assert c.get(f"/predict/{b['prediction_id']}", headers=v["h"]).json()["input_data"] == [{**ROW, "age": 61}]


def test_a_failed_jobs_message_is_stored_encrypted(mp_settings, tmp_path):
    "A job that fails the model's checks in the worker: its message quotes the value; neither file nor WAL holds it."
    from mlkit.marketplace import accounts, inputs, jobs
    from mlkit.marketplace.catalog import seed_catalog
    from mlkit.marketplace.tables import MlModel, upgrade_db
    from mlkit.db import get_engine
    from mlkit.marketplace.auth import register
    db = tmp_path / "fail.db"
    url = f"sqlite:///{db}"
    upgrade_db(url)
    seed_catalog(url, tmp_path / "models")
    uid = register(url, "erin", PW).id
    accounts.topup(url, uid, 20)
    pid = jobs.submit(url, uid, "risk-assessment", {**ROW, "bmi": 33.3713})["prediction_id"]
    runner = jobs.JobRunner(url, workers=1, model_dir=tmp_path / "models")
    ra = inputs.get_model(url, "risk-assessment")               # the model's range narrowed after the job was accepted
    cols = [{**c, "maximum": 30.0} if c["name"] == "bmi" else c for c in ra.input_schema["columns"]]
    runner._models[ra.id] = MlModel(id=ra.id, name=ra.name, cost=ra.cost,
                                    input_schema={**ra.input_schema, "columns": cols}, path=ra.path)
    import logging
    logfile = logging.FileHandler(tmp_path / "mlkit.log", encoding="utf-8")     # as the configured log file formats it
    from mlkit.core import JsonFormatter
    logfile.setFormatter(JsonFormatter())
    logging.getLogger("mlkit").addHandler(logfile)
    try: assert runner.run_pending() == 1
    finally: logging.getLogger("mlkit").removeHandler(logfile); logfile.close()
    logged = (tmp_path / "mlkit.log").read_text()
    assert f"prediction job {pid} failed (InvalidInput)" in logged and jobs.INPUT_REJECTED in logged, logged
    # neither the message nor a traceback quotes it
    assert "33.37" not in logged, logged
    job = jobs.get_prediction(url, uid, pid)
    assert job["status"] == "failed" and "33.3713 is outside the valid range" in job["error"]     # its owner reads it
    assert [j["error"] for j in jobs.list_predictions(url, uid)] == [jobs.INPUT_REJECTED]
    assert accounts.balance(url, uid) == 20                                                          # refunded
    get_engine(url).dispose()
    files = b"".join(p.read_bytes() for p in tmp_path.glob("fail.db*"))                          # file, WAL, shm
    assert b"33.3713" not in files and b"33.37" not in files


# ------------------------------------------------------------------------------------------ seed 000: OAuth2, CSRF
def test_oauth2_password_flow_and_rotating_refresh_tokens(client):
    u = _user(client)
    tok = client.post("/token", data={"grant_type": "password", "username": u["name"], "password": PW}).json()
    assert tok["token_type"] == "bearer" and tok["access_token"] and tok["refresh_token"]
    new = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert new.status_code == 200 and new.json()["refresh_token"] != tok["refresh_token"]
    assert client.get("/users/me", headers={"Authorization": "Bearer " + new.json()["access_token"]}).status_code == 200
    replay = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    gone = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": new.json()["refresh_token"]})
    assert gone.status_code == 401                             # the replay revoked the whole family
    assert client.post("/token", data={"grant_type": "client_credentials"}).status_code == 400
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    flow = schemes["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "token" and flow["refreshUrl"] == "token"


def test_cookies_authenticate_nothing(client):
    """CSRF needs a cookie that acts: the marketplace sets none and reads none, so a cross-site POST carries no
    credentials."""
    u = _user(client)
    r = client.post("/token", data={"username": u["name"], "password": PW})
    assert "set-cookie" not in r.headers
    forged = client.post("/account/topup", json={"amount": 5},
                         headers={"Origin": "https://evil.example",
                                  "Cookie": f"session={u['h']['Authorization'][7:]}"})
    assert forged.status_code == 401


# ------------------------------------------------------------------------------------------------------ seed 000: HTTPS
def _self_signed(tmp_path):
    "A throwaway self-signed certificate for 127.0.0.1 (cryptography), as PEM files."
    import datetime as dt
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return certfile, keyfile


@pytest.mark.slow
def test_mlkit_serve_over_tls(serve_env, tmp_path):
    """`mlkit serve --ssl-certfile --ssl-keyfile` answers /readyz over HTTPS, verified against the certificate; plain
    HTTP gets nothing."""
    import os, signal, subprocess, sys
    import httpx
    from pathlib import Path
    from conftest import free_port
    certfile, keyfile = _self_signed(tmp_path)
    port, root = free_port(), Path(__file__).resolve().parents[1]
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlkit"), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)],
                            cwd=root, env=serve_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import ssl
        deadline, ok, trust = time.monotonic() + 300, None, ssl.create_default_context(cafile=str(certfile))
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ok = httpx.get(f"https://127.0.0.1:{port}/readyz", verify=trust, timeout=5)
                if ok.status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.5)
        log.seek(0)
        assert ok is not None and ok.status_code == 200, log.read()[-3000:]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)         # TLS only on that port
        with pytest.raises(httpx.ConnectError):
            # an unknown certificate is refused by default
            httpx.get(f"https://127.0.0.1:{port}/readyz", timeout=5)
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)
        log.close()


# --------------------------------------------------------------------- defect 7: Yahoo Finance, rate limit and time-out
@pytest.fixture()
def hanging_yahoo(tmp_path):
    "A requests.Session whose every request goes, over a real socket, to a local server that accepts and never answers."
    import socket
    from urllib.parse import urlsplit
    import requests
    from requests.adapters import HTTPAdapter
    srv = socket.socket()
    # the kernel completes the handshake; nobody ever reads or answers
    srv.bind(("127.0.0.1", 0)); srv.listen(64)
    port, seen = srv.getsockname()[1], []

    class ToLocal(HTTPAdapter):
        def send(self, request, **kw):
            u = urlsplit(request.url)
            seen.append((u.netloc, u.path, kw.get("timeout")))
            request.url = f"http://127.0.0.1:{port}{u.path}?{u.query}"
            return super().send(request, **kw)
    s = requests.Session()
    for prefix in ("https://", "http://"): s.mount(prefix, ToLocal())
    s.seen = seen
    yield s
    srv.close()
    import yfinance as yf                                  # yfinance keeps the last session: a real one again
    from curl_cffi import requests as curl_requests
    yf.Ticker("BTC-USD", session=curl_requests.Session(impersonate="chrome"))


def test_yahoo_is_asked_within_a_short_timeout(hanging_yahoo, tmp_path):
    """A Yahoo request that never gets an answer ends after [prices] yahoo_timeout_s: an error (yfinance), or the
    offline copy (auto)."""
    from mlkit.core import DataError
    from mlkit.market.prices import TokenBucket, load_prices
    bucket = TokenBucket(rate=1, burst=10)
    with pytest.raises(DataError, match=r"did not answer for 'BTC-USD' within 0.5 s"):
        load_prices("BTC-USD", "2021-01-01", "2021-02-01", source="yfinance", session=hanging_yahoo, cache_dir=tmp_path,
                    timeout=0.5, limiter=bucket)
    # it did go out over a socket (yfinance's first request waits up to 30 s)
    assert hanging_yahoo.seen
    px = load_prices("BTC-USD", "2019-01-01", "2019-02-01", source="auto", session=hanging_yahoo, cache_dir=tmp_path,
                     timeout=0.5, limiter=bucket)
    assert px.attrs["source"] == "bundled btc_usd_daily (offline fallback)" and len(px) == 31


def test_yahoo_rate_limit_holds_under_a_crowd(tmp_path):
    "40 concurrent callers (the market routes are anonymous) get at most `burst` Yahoo requests; the rest are not sent."
    from mlkit import datasets
    from mlkit.market.prices import OfflineYahooSession, TokenBucket, YahooRateLimited, load_prices
    s = OfflineYahooSession({"BTC-USD": datasets.load("btc_usd_daily")})
    bucket = TokenBucket(rate=1 / 3600, burst=3)                 # 3 in a row, then one an hour
    def ask(i):
        try: return load_prices("BTC-USD", f"2018-01-{i % 28 + 1:02d}", f"2018-{i // 28 + 3:02d}-01", source="yfinance",
                                session=s, cache_dir=tmp_path / str(i), limiter=bucket).attrs["source"]
        except YahooRateLimited as e: return str(e)
    with ThreadPoolExecutor(8) as ex: out = list(ex.map(ask, range(40)))
    assert out.count("yfinance") == 3, out[:5]
    assert sum("sends at most" in o and "3 in a row" in o for o in out) == 37


@pytest.mark.skipif(not os.environ.get("MLKIT_TEST_POSTGRES_URL"),
                    reason="no PostgreSQL: set MLKIT_TEST_POSTGRES_URL=postgresql+psycopg://user:pw@host/db "
                           "(.ci/run starts one)")
def test_row_bound_encryption_on_postgresql(mp_settings, tmp_path, monkeypatch):
    """The same guarantees on PostgreSQL: a swap of two jobs' envelopes is detected, a failure's message is sealed,
    reencrypt."""
    import json as _json
    from mlkit.marketplace import accounts, inputs, jobs
    from mlkit.marketplace.auth import register
    from mlkit.marketplace.catalog import seed_catalog
    from mlkit.marketplace.errors import StoredDataUnavailable
    from mlkit.marketplace.tables import MlModel, upgrade_db
    base = os.environ["MLKIT_TEST_POSTGRES_URL"]
    # a schema of its own: other tests' rows are sealed with other keys (reencrypt reads all)
    schema = "mp_crypto_test"
    with create_engine(base).begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE")); c.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    assert upgrade_db(url) == "0005"
    seed_catalog(url, tmp_path / "models")
    uid = register(url, f"pg{uuid.uuid4().hex[:8]}", PW).id
    accounts.topup(url, uid, 50)
    a, b = (jobs.submit(url, uid, "risk-assessment", r)["prediction_id"] for r in (ROW, {**ROW, "age": 61}))
    runner = jobs.JobRunner(url, workers=1, model_dir=tmp_path / "models")
    runner.run_pending()
    assert jobs.get_prediction(url, uid, a)["input_data"] == [ROW]
    eng = create_engine(url)
    def raw(pid):
        with eng.connect() as c:
            return c.execute(text("SELECT input_data, result FROM mp_predictions WHERE id = :i"), {"i": pid}).one()
    def put(pid, row):
        with eng.begin() as c:
            c.execute(text("UPDATE mp_predictions SET input_data = CAST(:i AS json), result = CAST(:r AS json) "
                           "WHERE id = :p"), {"i": _json.dumps(row[0]), "r": _json.dumps(row[1]), "p": pid})
    ra, rb = raw(a), raw(b)
    put(a, rb); put(b, ra)
    for pid in (a, b):
        with pytest.raises(StoredDataUnavailable, match="failed its integrity check") as e:
            jobs.get_prediction(url, uid, pid)
        assert e.value.status == 409
    put(a, ra); put(b, rb)
    assert jobs.get_prediction(url, uid, b)["input_data"] == [{**ROW, "age": 61}]
    q = jobs.submit(url, uid, "risk-assessment", {**ROW, "bmi": 33.3713})["prediction_id"]
    ra_ = inputs.get_model(url, "risk-assessment")
    cols = [{**c, "maximum": 30.0} if c["name"] == "bmi" else c for c in ra_.input_schema["columns"]]
    runner._models[ra_.id] = MlModel(id=ra_.id, name=ra_.name, cost=ra_.cost, path=ra_.path,
                                     input_schema={**ra_.input_schema, "columns": cols})
    runner.run_pending()
    assert "33.3713 is outside" in jobs.get_prediction(url, uid, q)["error"]
    with eng.connect() as c:
        stored = c.execute(text("SELECT CAST(error AS text) || CAST(error_detail AS text) FROM mp_predictions "
                                "WHERE id = :i"), {"i": q}).scalar()
    assert "33.37" not in stored and '"v": 2' in stored.replace('"v":2', '"v": 2')
    monkeypatch.setitem(mp_settings, "encryption_keys", f"{mp_settings['encryption_keys']},{new_key_entry('k1')}")
    moved = reencrypt(url)
    assert moved.get("k0", 0) >= 3 and reencrypt(url) == {}
    assert jobs.get_prediction(url, uid, a)["input_data"] == [ROW]
    eng.dispose()

"""The bento as an operator meets it (issue 15) and the server's processes (issue 9, defect 5): build it twice, export
it, import it into an empty BentoML home, serve it from there with no working tree and no model store; a server whose
start-up fails exits; kill -9 on a server leaves no worker behind, and a restart on the same port finishes the job that
was running, charged once."""
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import BIN, ROOT, free_port, stop_server, wait_ready

ROW = {"age": 50, "bmi": 26.4, "bp": 94, "s1": 190, "s5": 4.6}
SECRET_NAMES = ("jwt_secret", "encryption_keys", ".db", ".db-wal", ".db-shm", ".pem", ".key", "mlkit_registry.json")


def start(cmd: list, env: dict, cwd, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def workers_of(pid: int) -> list[int]:
    "The child processes of `pid` (BentoML's workers, each in a session of its own)."
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError): return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try: s.bind(("127.0.0.1", port)); return True
        except OSError: return False


def bentoml(*args, home, cwd, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true")
    r = subprocess.run([str(BIN / "bentoml"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"bentoml {args}: {r.stderr[-3000:]}"
    return r


def deploy_env(home: Path, tmp_path: Path) -> dict:
    "A deployment's environment: no working tree's settings or store, BENTOML_HOME = `home`."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLKIT_", "BENTOML_"))}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", GRADIO_ANALYTICS_ENABLED="False",
               MLKIT_DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.db'}", MLKIT_PATHS_DATA_DIR=str(tmp_path / "data"),
               MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"), MLKIT_PATHS_CACHE_DIR=str(tmp_path / "cache"),
               MLKIT_MARKETPLACE_JWT_SECRET=uuid.uuid4().hex)
    return env


@pytest.fixture(scope="module")
def built(serve_env, tmp_path_factory):
    "Two builds in a row from the serve_env model store; the first bento's tag, its models and the build output."
    tmp = tmp_path_factory.mktemp("bento-build")
    r = subprocess.run([sys.executable, "-m", "mlkit.serve.train", "marketplace"], cwd=ROOT, env=serve_env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    outs = []
    for v in ("first", "second"):    # the second build once copied the first into itself ("File name too long")
        r = subprocess.run([sys.executable, "-m", "mlkit.serve.bento", "--version", f"{v}{uuid.uuid4().hex[:6]}"],
                           cwd=ROOT, env=serve_env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(r.stdout)
    tag = outs[0].splitlines()[0].split()[1]
    return {"tag": tag, "out": outs[0], "home": Path(serve_env["BENTOML_HOME"]), "tmp": tmp}


def test_build_packs_every_served_model(built, serve_env):
    home, tag = built["home"], built["tag"]
    info = json.loads(bentoml("get", tag, "-o", "json", home=home, cwd=built["tmp"]).stdout)
    packed = sorted(m["tag"] if isinstance(m, dict) else m for m in info["models"])
    printed = sorted(line.split()[-1] for line in built["out"].splitlines() if line.strip().startswith("packed "))
    assert packed == printed and len(packed) >= 7, (packed, printed)   # 2 market, queues, text, vision, recsys, monitor
    tags = json.loads(serve_env["MLKIT_TEST_TAGS"])
    assert {tags["BTC-USD"], tags["^GSPC"]} <= set(packed)
    src = home / "bentos" / tag.replace(":", "/") / "src"
    manifest = json.loads((src / "mlkit_bento.json").read_text())
    assert sorted(manifest["models"].values()) == packed and manifest["bento"] == tag
    assert "size:" in built["out"] and "MB" in built["out"]


def test_bento_holds_no_secret_and_no_state(built):
    src = built["home"] / "bentos" / built["tag"].replace(":", "/") / "src"
    files = [str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith(SECRET_NAMES) or "/bentoml/" in f], files
    assert sorted({f.split("/")[0] for f in files}) == ["bentofile.yaml", "data", "mlkit", "mlkit_bento.json",
                                                        "settings.ini"]
    assert {f.split("/")[-1] for f in files if f.startswith("data/")} == {"model.joblib", "model_card.json",
                                                                           "example.json"}


def test_exported_bento_serves_from_an_empty_home(built, tmp_path):
    "export -> import into an empty home -> serve from a folder outside the working tree -> call two domains."
    archive = tmp_path / "ml_kit.bento"
    bentoml("export", built["tag"], str(archive), home=built["home"], cwd=tmp_path)
    home2 = tmp_path / "home2"
    bentoml("import", str(archive), home=home2, cwd=tmp_path)
    assert not (home2 / "mlkit_registry.json").exists()
    port, log = free_port(), tmp_path / "serve.log"
    proc = start([str(BIN / "bentoml"), "serve", built["tag"], "--host", "127.0.0.1", "--port", str(port),
                  "--timeout-graceful-shutdown", "3"], deploy_env(home2, tmp_path), tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(proc, base, log)
        print(f"imported bento ready in {ready:.0f} s (archive {archive.stat().st_size / 1e6:.1f} MB, "
              f"load {os.getloadavg()[0]:.1f})")
        about = httpx.get(base + "/about", timeout=10).json()
        assert about["mode"] == "bento" and about["bento"] == built["tag"], about
        # the bento's code, not the working tree's
        assert Path(about["code"]).is_relative_to(home2), about["code"]
        r = httpx.post(base + "/market/predict_symbol", json={"symbol": "^GSPC", "date": "2018-12-28"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model_tag"] in about["models"].values()
        models = httpx.get(base + "/marketplace/models", timeout=30)
        assert models.status_code == 200 and len(models.json()) >= 3, models.text
        r = httpx.post(base + "/text/predict", json={"text": "a gripping, moving film"}, timeout=30)
        assert r.status_code == 200
    finally:
        stop_server(proc)


def test_a_bento_folder_with_its_models_serves_with_another_home(built, tmp_path):
    """The layout of an image from `bentoml containerize`: the bento's folder holds its models (`models/` beside
    `src/`) and BENTOML_HOME is another, empty folder; the service reads the bento's own models, as BentoML does."""
    archive, folder, home = tmp_path / "ml_kit.bento", tmp_path / "bento", tmp_path / "empty-home"
    bentoml("export", built["tag"], str(archive), home=built["home"], cwd=tmp_path)
    with tarfile.open(archive) as t: t.extractall(folder, filter="data")
    assert {"market-btc-usd", "market-gspc"} <= {p.name for p in (folder / "models").iterdir()}
    home.mkdir()
    port, log = free_port(), tmp_path / "serve.log"
    proc = start([str(BIN / "bentoml"), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                  "--timeout-graceful-shutdown", "3"], deploy_env(home, tmp_path), tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log)
        about = httpx.get(base + "/about", timeout=10).json()
        assert about["mode"] == "bento" and about["bento"] == built["tag"], about
        r = httpx.post(base + "/market/predict_symbol", json={"symbol": "^GSPC", "date": "2018-12-28"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model_tag"] == about["models"]["market-gspc"]
        r = httpx.post(base + "/text/predict", json={"text": "a gripping, moving film"}, timeout=30)
        assert r.status_code == 200, r.text
        assert not (home / "models").exists() or not any((home / "models").iterdir())   # nothing from the home
    finally:
        stop_server(proc)


def test_a_failed_start_exits_and_leaves_nothing(serve_env, tmp_path):
    "A database the marketplace cannot migrate: the server says why and exits, no listener and no worker left."
    import sqlite3
    db = tmp_path / "broken.db"
    with sqlite3.connect(db) as c:   # a table that migration 0002 creates, already there at revision 0001
        c.execute("CREATE TABLE mp_alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        c.execute("INSERT INTO mp_alembic_version VALUES ('0001')")
        c.execute("CREATE TABLE mp_login_throttle (key VARCHAR(80) PRIMARY KEY)")
    port, log = free_port(), tmp_path / "serve.log"
    env = dict(serve_env, MLKIT_DATABASE_URL=f"sqlite:///{db}")
    proc = start([str(BIN / "bentoml"), "serve", "mlkit.serve.service:MLKit", "--host", "127.0.0.1",
                  "--port", str(port)], env, ROOT, log)
    seen: set[int] = set()
    try:
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 300:
            seen.update(workers_of(proc.pid)); time.sleep(0.5)
        assert proc.poll() is not None, "the server kept running after its start-up failed"
        text = log.read_text()
        assert "start-up failed" in text and "mp_login_throttle" in text
        assert text.count("Application startup failed") <= 2, "the failed worker was restarted"
        time.sleep(2)
        assert seen and not [p for p in seen if alive(p)]
        assert port_free(port)
    finally:
        if proc.poll() is None: stop_server(proc)


def test_kill_9_leaves_no_worker_and_a_restart_finishes_the_job_once(serve_env, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    db = f"sqlite:///{tmp_path / 'mp.db'}"
    env = dict(serve_env, MLKIT_DATABASE_URL=db, MLKIT_MARKETPLACE_DEMO_DELAY_S="60",
               MLKIT_MARKETPLACE_LEASE_SECONDS="2", MLKIT_MARKETPLACE_WORKERS="1")
    cmd = [str(BIN / "bentoml"), "serve", "mlkit.serve.service:MLKit", "--host", "127.0.0.1", "--port", str(port),
           "--timeout-graceful-shutdown", "3"]
    base, mp = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/marketplace"
    proc = start(cmd, env, ROOT, log)
    try:
        wait_ready(proc, base, log)
        name, pw = f"k{uuid.uuid4().hex[:8]}", "correct horse battery"
        assert httpx.post(mp + "/users", json={"firstname": "K", "username": name, "password": pw}).status_code == 201
        token = httpx.post(mp + "/token", data={"username": name, "password": pw}).json()["access_token"]
        h = {"Authorization": "Bearer " + token}
        assert httpx.post(mp + "/account/topup", json={"amount": 30}, headers=h).status_code == 200
        pid = httpx.post(mp + "/predict", json={"model_id": "premium-analysis", "input_data": ROW},
                         headers=h).json()["prediction_id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{mp}/predict/{pid}", headers=h).json()["status"] != "running":
            assert time.monotonic() < deadline, "the job never started"; time.sleep(0.2)
        balance = httpx.get(mp + "/users/me", headers=h).json()["balance"]
        workers = workers_of(proc.pid)
        assert workers
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)           # the server, mid-job
        deadline = time.monotonic() + 10
        while [w for w in workers if alive(w)] and time.monotonic() < deadline: time.sleep(0.1)
        assert not [w for w in workers if alive(w)], "a worker outlived its server"
        # the kernel closes a dead process' sockets
        deadline = time.monotonic() + 15
        while not port_free(port) and time.monotonic() < deadline: time.sleep(0.2)
        holders = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        assert port_free(port), f"port {port} still taken: {[ln for ln in holders.splitlines() if f':{port} ' in ln]}"
        proc = start(cmd, dict(env, MLKIT_MARKETPLACE_DEMO_DELAY_S="0"), ROOT, tmp_path / "serve2.log")
        wait_ready(proc, base, tmp_path / "serve2.log")
        deadline = time.monotonic() + 60
        while (j := httpx.get(f"{mp}/predict/{pid}", headers=h).json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, f"job still {j['status']}"; time.sleep(0.3)
        assert j["status"] == "completed" and j["attempts"] == 2, j
        assert httpx.get(mp + "/users/me", headers=h).json()["balance"] == balance      # charged once, before the kill
        kinds = sorted(t["kind"] for t in httpx.get(mp + "/account/transactions", headers=h).json())
        assert kinds == ["charge", "topup"], kinds
    finally:
        if proc.poll() is None: stop_server(proc)

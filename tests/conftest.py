import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def run_cli(tmp_path):
    "Run the `mlkit` command in a subprocess with its logs under tmp_path; returns the CompletedProcess."
    def run(*args, env=None, timeout=300):
        e = dict(os.environ, MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"), **(env or {}))
        return subprocess.run([str(BIN / "mlkit"), *args], capture_output=True, text=True, cwd=ROOT, env=e,
                              timeout=timeout)
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, base: str, log_path: Path, timeout: float = 300) -> float:
    "Seconds until `base`/readyz answers 200; fails with the end of the server's log if it exits or times out."
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            if requests.get(base + "/readyz", timeout=5).status_code == 200: return time.monotonic() - t0
        except requests.RequestException: pass   # not listening yet, or busy starting
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout} s:\n{Path(log_path).read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen, grace: float = 30):
    """Stop a server started with `start_new_session=True`: SIGTERM to its process group (it holds the workers),
    then SIGKILL."""
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def serve_env(tmp_path_factory):
    """Environment of a throwaway deployment: temporary model store (default models trained once), database and
    data dirs."""
    tmp = tmp_path_factory.mktemp("bento")
    env = dict(os.environ, BENTOML_HOME=str(tmp / "bentoml"), MLKIT_PATHS_BENTOML_HOME=str(tmp / "bentoml"),
               BENTOML_DO_NOT_TRACK="true", GRADIO_ANALYTICS_ENABLED="False", GRADIO_HEARTBEAT_INTERVAL="1",
               MLKIT_PATHS_LOG_DIR=str(tmp / "logs"), MLKIT_DATABASE_URL=f"sqlite:///{tmp / 'mlkit.db'}",
               MLKIT_PATHS_DATA_DIR=str(tmp / "data"), MLKIT_PATHS_MODEL_DIR=str(tmp / "models"),
               MLKIT_MARKETPLACE_JWT_SECRET=uuid.uuid4().hex)
    code = ("from mlkit.serve.train import train_all; from mlkit.market.lifecycle import model_name; "
            "from mlkit import store; "
            # no 5-fold CV here
            "from mlkit.recsys.recommend import train_default as recsys; import json; recsys(evaluate=False); "
            "from mlkit.queues.models import train_default as queues; "
            "from mlkit.queues.forecast import QueueForecaster; "
            "queues(None, ['nyc_departures'], "
            "forecasters={'nyc_departures': QueueForecaster('weekly', h=4, n_windows=2)}); "
            "queues(None, ['nyc_departures'], "
            "forecasters={'nyc_departures': QueueForecaster('daily', h=7, n_windows=2)}); "
            "r = train_all([d for d in ('market', 'text', 'vision', 'monitor')])['market']; "
            "print(json.dumps({s: store.production_tag(model_name(s)) for s in r}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    env["MLKIT_TEST_TAGS"] = r.stdout.strip().splitlines()[-1]
    return env


@pytest.fixture(scope="session")
def tags(serve_env) -> dict:
    "symbol -> tag of the production models the server loaded."
    return json.loads(serve_env["MLKIT_TEST_TAGS"])


@pytest.fixture(scope="session")
def server(serve_env, tmp_path_factory):
    """Base URL of a real `bentoml serve mlkit.serve.service:MLKit` on 127.0.0.1, shared by the test modules;
    stopped by its PID."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = open(log_path, "w+")
    os.environ["MLKIT_TEST_SERVE_LOG"] = str(log_path)   # tests read what the server logged
    # an open Gradio session keeps a heartbeat stream that uvicorn waits for on SIGTERM: closed sessions are noticed
    # within GRADIO_HEARTBEAT_INTERVAL, and --timeout-graceful-shutdown bounds the wait for the others
    proc = subprocess.Popen([str(BIN / "bentoml"), "serve", "mlkit.serve.service:MLKit", "--host", "127.0.0.1",
                             "--port", str(port), "--timeout-graceful-shutdown", "3"],
                            cwd=ROOT, env=serve_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log_path)   # a loaded 2-core machine takes minutes to import everything twice
        yield base
    finally:
        stop_server(proc, grace=20)
        log.close()


@pytest.fixture(autouse=True)
def _fresh_bentoml_metrics():
    """BentoML registers its request metrics once per in-process app (`Service.to_asgi()`); a second app in the same
    pytest process would raise DuplicateTimeseries. Each test leaves prometheus' registry without BentoML's
    collectors."""
    yield
    try: from prometheus_client import REGISTRY
    except ImportError: return
    for collector, names in list(REGISTRY._collector_to_names.items()):
        if any(n.startswith("bentoml_") for n in names): REGISTRY.unregister(collector)

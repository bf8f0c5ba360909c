"""Integration tests of mlkit.monitor: the four roles as separate processes over a real RabbitMQ server (442 diabetes
rows end to end, SIGKILL and restart mid-stream, malformed messages to the dead-letter queue), the embedded broker in
one process, and the service routes in process.

The RabbitMQ tests need `MLKIT_TEST_AMQP_URL` (CI's `.ci/run` starts Debian's rabbitmq-server on loopback and sets it);
without it they skip and say why. When it is set and the server does not answer, they fail."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
AMQP = os.environ.get("MLKIT_TEST_AMQP_URL")
needs_rabbit = pytest.mark.skipif(not AMQP,
                                  reason="MLKIT_TEST_AMQP_URL is not set: no RabbitMQ server (.ci/run starts one)")
N_ROWS = 442
TIMEOUT = 300   # seconds; generous for a loaded CI machine (each role imports scikit-learn and BentoML)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    "A model store with the monitored model, trained on the bundled diabetes rows (a quick drift calibration)."
    from mlkit.monitor.model import train
    h = tmp_path_factory.mktemp("bentoml")
    train(home=h, drift_sims=30, name="monitor-diabetes")
    return h


@pytest.fixture(scope="module")
def rabbit():
    "The RabbitMQ URL; fails (not skips) when the variable is set but the server does not answer."
    import kombu
    with kombu.Connection(AMQP, connect_timeout=5) as c:
        c.ensure_connection(max_retries=2)   # raises: the test fails loudly
    return AMQP


def _env(home, tmp, prefix):
    return {**os.environ, "BENTOML_HOME": str(home), "MLKIT_DATABASE_URL": f"sqlite:///{tmp}/monitor.db",
            "MLKIT_MONITOR_BROKER_URL": AMQP or "", "MLKIT_MONITOR_QUEUE_PREFIX": prefix, "MLKIT_MONITOR_RUN": "itest",
            "MLKIT_PATHS_LOG_DIR": str(tmp / "logs"), "MLKIT_MONITOR_PLOT_INTERVAL_S": "1",
            "MLKIT_MONITOR_MATCH_TIMEOUT_S": "600", "PYTHONUNBUFFERED": "1"}


def _start(role, env, tmp, *args):
    log = open(tmp / f"{role}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "mlkit.monitor", role, *args], env=env, cwd=ROOT, stdout=log,
                            stderr=log)


def _scores(tmp):
    eng = create_engine(f"sqlite:///{tmp}/monitor.db")
    try:
        with eng.connect() as c:
            return [r[0] for r in c.execute(text("SELECT id FROM monitor_scores WHERE run = 'itest'"))]
    except Exception: return []   # tables not created yet
    finally: eng.dispose()


def _wait_scored(tmp, n, timeout, procs):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        ids = _scores(tmp)
        if len(ids) >= n: return ids
        for p in procs:
            if p.poll() not in (None, 0):
                pytest.fail(f"a role exited with {p.returncode}: {(tmp / 'score.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return _scores(tmp)


def _stop(procs):
    for p in procs:
        if p.poll() is None: p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()


def _check_complete(ids):
    assert len(ids) == len(set(ids)) == N_ROWS, f"{len(ids)} scores, {len(set(ids))} distinct ids; expected {N_ROWS}"
    assert set(ids) == {f"itest:{p}" for p in range(N_ROWS)}


@needs_rabbit
def test_rabbitmq_four_processes(rabbit, home, tmp_path):
    """The four roles as separate processes over RabbitMQ: every one of the 442 rows scored exactly once; the plot role
    writes its files."""
    env = _env(home, tmp_path, f"t{uuid.uuid4().hex[:8]}")
    procs = [_start(r, env, tmp_path) for r in ("score", "predict", "plot")]
    try:   # no wait for the consumers: the queues are durable and declared by whichever role connects first
        prod = _start("produce", env, tmp_path, "--interval", "0")
        assert prod.wait(TIMEOUT) == 0, (tmp_path / "produce.log").read_text()[-2000:]
        ids = _wait_scored(tmp_path, N_ROWS, TIMEOUT, procs)
        time.sleep(1.5)
    finally: _stop(procs)
    _check_complete(ids)
    assert (tmp_path / "logs" / "error_distribution.png").stat().st_size > 1000
    assert (tmp_path / "logs" / "metric_log.csv").read_text().startswith("id,y_true,y_pred,absolute_error")


@needs_rabbit
def test_rabbitmq_sigkill_and_restart(rabbit, home, tmp_path):
    "Each role killed with SIGKILL mid-stream and started again: no row lost, none scored twice."
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = _env(home, tmp_path, prefix)
    slow = ["--interval", "0.05"]   # 442 rows in about 22 s: time to kill every role mid-stream
    procs = {r: _start(r, env, tmp_path) for r in ("score", "predict")}
    assert _wait_for(lambda: _consumers(rabbit, prefix) >= 2, TIMEOUT), "the consumers did not connect"
    procs["produce"] = _start("produce", env, tmp_path, *slow)
    try:
        assert _wait_for(lambda: _offset(tmp_path) >= 100, TIMEOUT)
        procs["produce"].send_signal(signal.SIGKILL); procs["produce"].wait(10)
        assert _offset(tmp_path) < N_ROWS, "the producer finished before it could be killed"
        procs["produce"] = _start("produce", env, tmp_path, *slow)
        for victim, after in (("predict", 60), ("score", 150)):
            assert _wait_for(lambda after=after: len(_scores(tmp_path)) >= after, TIMEOUT)
            procs[victim].send_signal(signal.SIGKILL); procs[victim].wait(10)
            assert len(_scores(tmp_path)) < N_ROWS, f"the stream was over before {victim} could be killed"
            procs[victim] = _start(victim, env, tmp_path)
        assert procs["produce"].wait(TIMEOUT) == 0
        _wait_scored(tmp_path, N_ROWS, TIMEOUT, [procs["score"], procs["predict"]])
        time.sleep(1.5)   # anything scored twice would show up now
        ids = _scores(tmp_path)
    finally: _stop(list(procs.values()))
    _check_complete(ids)


def _consumers(url, prefix):
    "Consumers connected to the features and y_true queues (one each when the model and the scorer are up)."
    from mlkit.monitor.messages import Broker
    with Broker(url, prefix) as b:
        return sum(b.queues[k].bind(b.channel).queue_declare(passive=True).consumer_count > 0
                   for k in ("features", "y_true"))


def _offset(tmp):
    eng = create_engine(f"sqlite:///{tmp}/monitor.db")
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT next_pos FROM monitor_offsets WHERE run = 'itest'")).scalar() or 0
    except Exception: return 0
    finally: eng.dispose()


def _wait_for(cond, timeout):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if cond(): return True
        time.sleep(0.1)
    return False


@needs_rabbit
def test_rabbitmq_dead_letters(rabbit, home, tmp_path):
    "Malformed messages go to the dead-letter queue with the reason; the consumers keep going."
    from mlkit.monitor.messages import Broker
    env = _env(home, tmp_path, prefix := f"t{uuid.uuid4().hex[:8]}")
    procs = [_start(r, env, tmp_path) for r in ("score", "predict")]
    try:
        with Broker(rabbit, prefix) as b:
            b.publish("features", b"\xff not json")
            b.publish("features", json.dumps({"version": 2, "kind": "features", "id": "x", "ts": 1.0, "row": 0,
                                              "features": {"age": 1.0}}))
            b.publish("y_true", json.dumps({"version": 1, "kind": "y_true", "id": "itest:0", "ts": 1.0,
                                            "y_true": "high"}))
            b.commit()
        prod = _start("produce", env, tmp_path, "--interval", "0", "--limit", "20")
        assert prod.wait(TIMEOUT) == 0
        ids = _wait_scored(tmp_path, 20, TIMEOUT, procs)
        time.sleep(1)
        with Broker(rabbit, prefix) as b: dead = b.drain("dead", timeout=2)
    finally: _stop(procs)
    assert len(ids) == 20
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 3 and {d["queue"] for d in dead} == {"features", "y_true"}, dead
    assert (any("Invalid JSON" in r for r in reasons) and any("version" in r for r in reasons)
            and any("y_true" in r for r in reasons))


def test_embedded_all_roles_with_duplicates(home, tmp_path):
    """All four roles in one process over the embedded broker; replayed (duplicate) messages are counted, not scored
    twice."""
    from mlkit import store
    from mlkit.monitor.messages import Broker, TrueMsg
    from mlkit.monitor.stream import Scorer, monitor_stream, score, scores_frame, summary
    db = f"sqlite:///{tmp_path}/m.db"
    with store.using_home(home):
        s = monitor_stream("all", url="memory://", prefix="emb", run="emb", db=db, interval_s=0, timeout=120,
                           consume={"wait": 0.02})
        assert s.scored == N_ROWS and s.pending == 0 and s.mae is not None
        sc = Scorer("emb", db)                  # a restarted scorer: replays the stored scores first
        with Broker("memory://", "emb") as b:   # at-least-once delivery: the same y_true again
            for p in range(5): b.publish("y_true", TrueMsg(id=f"emb:{p}", ts=time.time(), y_true=1.0))
            t_end = time.monotonic() + 60
            score(b, sc, stop=lambda: sc.counts["duplicate"] >= 5 or time.monotonic() > t_end, wait=0.02)
        s2 = summary("emb", db)
    assert s2.scored == N_ROWS and s2.duplicates == 5
    df = scores_frame("emb", db)
    assert df.id.is_unique and len(df) == N_ROWS


def _after(seconds):
    import threading
    ev = threading.Event(); threading.Timer(seconds, ev.set).start()
    return ev


def test_service_routes(home, tmp_path, monkeypatch):
    """MonitorService in process (a real ASGI app): a run's summary, errors and drift; bad input is a 400 with the
    reason."""
    from starlette.testclient import TestClient
    from mlkit import store
    from mlkit.core import settings
    from mlkit.monitor.stream import monitor_stream
    from mlkit.serve.monitor import MonitorService
    monkeypatch.setitem(settings.values["database"], "url", f"sqlite:///{tmp_path}/svc.db")
    with store.using_home(home):
        monitor_stream("all", url="memory://", prefix="svc", run="svc", db=settings.database_url, interval_s=0,
                       limit=80, timeout=120, consume={"wait": 0.02})
        with TestClient(MonitorService.to_asgi()) as c:
            s = c.post("/monitor/summary", json={"run": "svc"}).json()
            assert (s["scored"], s["pending"]) == (80, 0) and s["rolling_mae"] > 0
            errs = c.post("/monitor/errors", json={"run": "svc", "last": 30}).json()
            assert len(errs) == 30 and errs[-1]["n"] > errs[0]["n"]
            assert {d["feature"] for d in c.post("/monitor/drift", json={"run": "svc"}).json()} >= {"bmi", "age"}
            r = c.post("/monitor/errors", json={"run": "svc", "last": 0})
            assert r.status_code == 400 and "last" in r.text
    from prometheus_client import REGISTRY   # the gauges the bento's /metrics exports (set by the summary route)
    assert REGISTRY.get_sample_value("mlkit_monitor_scored", {"run": "svc"}) == 80


def test_cli_all_default_serves_dashboard_and_writes_metrics(tmp_path):
    """`python -m mlkit.monitor all` (what `mlkit monitor-stream all` runs) with the default embedded broker: it trains
    the default model into an empty store, serves the live dashboard, writes the metrics and keeps the dashboard up
    until SIGTERM (exit code 0)."""
    import urllib.request
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bento"), "MLKIT_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
           "MLKIT_PATHS_LOG_DIR": str(tmp_path / "logs"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLKIT_MONITOR_BROKER_URL", None)
    err = open(tmp_path / "err.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "mlkit.monitor", "all", "--interval", "0", "--limit", "60",
                          "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
    try:
        assert _wait_for(lambda: "stream done" in (tmp_path / "err.log").read_text() or p.poll() is not None,
                         TIMEOUT), "the stream did not finish"
        assert p.poll() is None, (tmp_path / "err.log").read_text()[-2000:]
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).status == 200
        assert len((tmp_path / "logs" / "metric_log.csv").read_text().splitlines()) == 61
        assert (tmp_path / "logs" / "error_distribution.png").stat().st_size > 1000
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, (tmp_path / "err.log").read_text()[-2000:]
    # Gradio prints to stdout too
    s = json.loads(next(line for line in out.decode().splitlines() if line.startswith("{")))
    assert (s["scored"], s["pending"], s["duplicates"]) == (60, 0, 0)


def test_cli_bad_options_exit_2():
    "Bad roles and options: exit code 2 with the reason on stderr, never a traceback."
    from mlkit.monitor.__main__ import main
    assert main(["train"]) == 2 and main(["score", "--order", "bmi"]) == 2 and main(["--help"]) == 0

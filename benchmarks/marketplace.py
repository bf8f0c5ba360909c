"""Prediction marketplace throughput (issue 5). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/marketplace.py [--jobs 600] [--drain 2000]

A real server (`python -m mlkit.marketplace.api`, uvicorn, one process, [marketplace] workers threads) on a temporary
SQLite database; clients POST single-row linear-regression (`risk-assessment`) jobs with a bearer JWT. "accepted/s":
202 answers per second of submitting; "completed/s": jobs per second from the first submission until the last one is
completed (read from the database). Then the workers alone: a backlog queued while no worker runs is drained
in-process by a JobRunner.
Target: at least 200 completed single-row jobs per second.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=600, help="jobs per client configuration")
ap.add_argument("--drain", type=int, default=2000, help="backlog drained by the workers alone")
ap.add_argument("--workers", default="auto", help="[marketplace] workers of the server")
a = ap.parse_args()
ROW = {"age": 50, "bmi": 26.4, "bp": 94, "s1": 190, "s5": 4.6}


def start(root: Path, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    (root / "settings.ini").write_text("\n".join([
        "[paths]", "data_dir = data", "model_dir = models", "log_dir = logs", "[database]", f"url = sqlite:///{root}/mp.db",
        "[marketplace]", f"workers = {workers}", "max_topup = 100000000",
        "jwt_secret = benchmark-only-secret-0123456789abcdef", "[logging]", "level = WARNING"]) + "\n")
    p = subprocess.Popen([sys.executable, "-m", "mlkit.marketplace.api", "--port", str(port)], cwd=root,
                         stdout=open(root / "server.log", "a"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200: return p, url
        except httpx.HTTPError: time.sleep(0.2)
    raise RuntimeError((root / "server.log").read_text()[-2000:])


def user(url: str, name: str, amount: int) -> tuple[dict, str]:
    uid = httpx.post(url + "/users", json={"username": name, "password": "benchmark pw"}).json()["user_id"]
    tok = httpx.post(url + "/token", data={"username": name, "password": "benchmark pw"}).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    while amount > 0:
        httpx.post(url + "/account/topup", json={"amount": min(amount, 100_000_000)}, headers=h); amount -= 100_000_000
    return h, uid


def cpu_seconds(pid: int) -> float:
    "User + system CPU seconds of a process so far (Linux /proc): a cost per job that other load does not inflate much."
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def completed(db, uid: str) -> int:
    with db.connect() as c:
        return c.execute(text("SELECT COUNT(*) FROM mp_predictions WHERE user_id = :u AND status = 'completed'"),
                         {"u": uid}).scalar()


with tempfile.TemporaryDirectory() as d:
    root = Path(d)
    proc, url = start(root, a.workers)
    db = create_engine(f"sqlite:///{root}/mp.db")
    print(f"cores {os.cpu_count()}, server: 1 uvicorn process, workers = {a.workers}, SQLite WAL; "
          f"{a.jobs} single-row jobs per run")
    try:
        for clients in (1, 16):
            h, uid = user(url, f"bench{clients}", a.jobs * 10)
            with (httpx.Client(headers=h, timeout=60, limits=httpx.Limits(max_connections=clients)) as c,
                  ThreadPoolExecutor(clients) as ex):
                t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
                codes = list(ex.map(lambda _: c.post(url + "/predict", json={"model_id": "risk-assessment",
                                                                             "input_data": ROW}).status_code,
                                    range(a.jobs)))
                t_acc = time.perf_counter() - t0
                while completed(db, uid) < codes.count(202): time.sleep(0.01)
                t_done, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            assert codes.count(202) == a.jobs, {s: codes.count(s) for s in set(codes)}
            print(f"{clients:2d} client(s): accepted {a.jobs / t_acc:7.1f} jobs/s   "
                  f"completed {a.jobs / t_done:7.1f} jobs/s"
                  f"   ({t_done:.2f} s for {a.jobs})   server CPU {cpu / a.jobs * 1000:.2f} ms/job"
                  f"   target >= 200 completed/s   load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        proc.terminate(); proc.wait(20)

    # the workers alone: queue a backlog with no worker running, then drain it in-process
    proc, url = start(root, 0)
    try:
        h, uid = user(url, "backlog", a.drain * 10)
        with httpx.Client(headers=h, timeout=60) as c, ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda _: c.post(url + "/predict", json={"model_id": "risk-assessment", "input_data": ROW}),
                        range(a.drain)))
    finally:
        proc.terminate(); proc.wait(20)
    os.chdir(root)                                        # the settings.ini above (model_dir) for the in-process runner
    from mlkit.marketplace.jobs import JobRunner  # noqa: E402
    r = JobRunner(f"sqlite:///{root}/mp.db", workers=1, model_dir=root / "models")
    t0 = time.perf_counter(); n = r.run_pending(); dt = time.perf_counter() - t0
    print(f"workers alone (in-process, batches of {r.batch}): {n} queued jobs completed in {dt:.2f} s = "
          f"{n / dt:7.1f} jobs/s"
          f"   load {os.getloadavg()[0]:.1f}")

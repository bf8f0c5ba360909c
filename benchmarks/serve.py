"""Latency and throughput of the market `predict` API: the bento (`bentoml serve mlkit.serve.service:MLKit`) against a
minimal Flask app serving the seed's `/predict` with the same production model, measured in the same run on loopback;
then an AutoGluon predictor's in-process figures (full ensemble, after `persist()`, and a deployment clone).

    python benchmarks/serve.py                 # default model store (trains the default models if it lacks them)
    python benchmarks/serve.py --home /tmp/bh  # another BentoML home
    python benchmarks/serve.py --no-autogluon  # skip the AutoGluon part (about a minute)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

FLASK_APP = r'''
import sys
from flask import Flask, jsonify, request
import pandas as pd
from mlkit import store
model, card, tag = store.load_model("market-btc-usd")
features = card["features"]
app = Flask(__name__)

@app.post("/predict")
def predict():  # the seed's endpoint: JSON features in, prediction, probability and confidence out
    rows = request.get_json(force=True)["rows"]
    X = pd.DataFrame(rows, columns=features)
    p = model.predict_proba(X)[:, 1]
    return jsonify([{"prediction": int(v > 0.5), "prob_up": float(v),
                     "confidence": "high" if max(v, 1 - v) > 0.7 else "medium" if max(v, 1 - v) > 0.5 else "low",
                     "model_tag": tag} for v in p])

app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 900):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=5).status_code in (200, 404, 405): return
        except requests.RequestException: pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen):
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)


def load(url: str, payload: bytes, clients: int, requests_per_client: int, warmup: int = 5) -> dict:
    "p50/p99 latency (ms) and throughput (requests/s) of `clients` threads each posting `requests_per_client` times."
    lat, errors = [], []
    barrier = threading.Barrier(clients + 1)

    def worker():
        s = requests.Session()
        h = {"Content-Type": "application/json"}
        for _ in range(warmup): s.post(url, data=payload, headers=h, timeout=60)
        barrier.wait()
        mine = []
        for _ in range(requests_per_client):
            t = time.perf_counter()
            r = s.post(url, data=payload, headers=h, timeout=60)
            mine.append(time.perf_counter() - t)
            if r.status_code != 200: errors.append(r.status_code)
        lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads: t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads: t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "rps": len(a) / wall,
            "requests": len(a), "errors": len(errors)}


def feature_rows(n: int) -> list[dict]:
    from mlkit.market.features import make_dataset
    from mlkit.market.prices import load_prices
    X, _ = make_dataset(load_prices("BTC-USD", source="bundled"))
    recs = X.to_dict("records")
    return [{"symbol": "BTC-USD", **recs[i % len(recs)]} for i in range(n)]


def load_avg() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_http(env: dict, counts: dict, workers: int = 1) -> list[dict]:
    bport, fport = free_port(), free_port()
    benv = dict(env, MLKIT_SERVING_WORKERS=str(workers))
    bento = subprocess.Popen([str(BIN / "bentoml"), "serve", "mlkit.serve.service:MLKit", "--host", "127.0.0.1",
                              "--port", str(bport)],
                             cwd=ROOT, env=benv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f: f.write(FLASK_APP)
    flask = subprocess.Popen([sys.executable, f.name, str(fport)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    out = []
    try:
        wait_ready(f"http://127.0.0.1:{bport}/readyz", bento)
        wait_ready(f"http://127.0.0.1:{fport}/", flask)
        for n_rows in (1, 1000):
            rows = feature_rows(n_rows)
            bento_body = json.dumps({"rows": rows}).encode()
            flask_body = json.dumps({"rows": [{k: v for k, v in r.items() if k != "symbol"} for r in rows]}).encode()
            for clients in (1, 16):
                per = counts[(n_rows, clients)]
                b = load(f"http://127.0.0.1:{bport}/market/predict", bento_body, clients, per)
                fl = load(f"http://127.0.0.1:{fport}/predict", flask_body, clients, per)
                out.append({"rows": n_rows, "clients": clients, "workers": workers, "bento": b, "flask": fl,
                            "load": os.getloadavg()})
                print(f"workers={workers} rows={n_rows:>4} clients={clients:>2} | "
                      f"bento p50 {b['p50_ms']:7.2f} ms p99 {b['p99_ms']:7.2f} ms {b['rps']:7.1f} req/s | "
                      f"flask p50 {fl['p50_ms']:7.2f} ms p99 {fl['p99_ms']:7.2f} ms {fl['rps']:7.1f} req/s | "
                      f"ratios bento/flask: p50 {b['p50_ms'] / fl['p50_ms']:.2f}, throughput {b['rps'] / fl['rps']:.2f}"
                      + (f" | errors bento {b['errors']} flask {fl['errors']}" if b["errors"] or fl["errors"] else "")
                      + f" | {load_avg()}", flush=True)
    finally:
        stop(bento); stop(flask); os.unlink(f.name)
    return out


def timeit(f, n: int) -> dict:
    for _ in range(3): f()
    a = []
    for _ in range(n):
        t = time.perf_counter(); f(); a.append(time.perf_counter() - t)
    a = np.array(a) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def bench_autogluon(time_limit: float, home: str) -> dict:
    """In-process predict latency of an AutoGluon predictor (full, persisted, deployment clone) beside the production
    CatBoost."""
    import pandas as pd
    from mlkit import store
    from mlkit.market.features import make_dataset
    from mlkit.market.prices import load_prices
    from mlkit.models import make_model
    X, y = make_dataset(load_prices("BTC-USD", source="bundled"))
    Xt, yt = X.iloc[-800:], y.iloc[-800:]
    t = time.perf_counter()
    ag = make_model("autogluon", presets="medium_quality", time_limit=time_limit).fit(Xt, yt)
    fit_s = time.perf_counter() - t
    pred = ag.predictor_
    one, many = X.iloc[[-1]], pd.concat([X] * 1)[-1000:]
    res = {"fit_s": fit_s, "models": pred.model_names(), "best": pred.model_best}
    res["full"] = {"1": timeit(lambda: pred.predict_proba(one), 30),
                   "1000": timeit(lambda: pred.predict_proba(many), 10)}
    pred.persist()
    res["persisted"] = {"1": timeit(lambda: pred.predict_proba(one), 50),
                        "1000": timeit(lambda: pred.predict_proba(many), 10)}
    with tempfile.TemporaryDirectory() as d:
        clone = pred.clone_for_deployment(str(Path(d) / "deploy"), return_clone=True)
        clone.persist()
        res["deployment_clone"] = {"1": timeit(lambda: clone.predict_proba(one), 50),
                                   "1000": timeit(lambda: clone.predict_proba(many), 10)}
        res["clone_size_mb"] = sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file()) / 1e6
    cb, _, tag = store.load_model("market-btc-usd", home=home)
    res["catboost"] = {"tag": tag, "1": timeit(lambda: cb.predict_proba(one), 100),
                       "1000": timeit(lambda: cb.predict_proba(many), 30)}
    for k in ("full", "persisted", "deployment_clone", "catboost"):
        print(f"in-process {k:>16}: 1 row p50 {res[k]['1']['p50_ms']:7.2f} ms p99 {res[k]['1']['p99_ms']:7.2f} ms | "
              f"1000 rows p50 {res[k]['1000']['p50_ms']:8.2f} ms p99 {res[k]['1000']['p99_ms']:8.2f} ms", flush=True)
    print(f"AutoGluon: fit {fit_s:.1f} s, best {res['best']}, {len(res['models'])} models, "
          f"deployment clone {res['clone_size_mb']:.1f} MB")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", help="BentoML home holding the production models (default: settings' bentoml_home)")
    ap.add_argument("--requests", type=int, default=200,
                    help="one-row requests per client at 1 client (others scale down)")
    ap.add_argument("--no-autogluon", action="store_true")
    ap.add_argument("--ag-time-limit", type=float, default=30)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--workers", default="1", help="comma-separated bento worker counts to measure, e.g. 1,2")
    a = ap.parse_args()
    from mlkit.core import settings
    home = str(Path(a.home).resolve()) if a.home else str(settings.path("bentoml_home"))
    env = dict(os.environ, BENTOML_HOME=home, MLKIT_PATHS_BENTOML_HOME=home, BENTOML_DO_NOT_TRACK="true",
               GRADIO_ANALYTICS_ENABLED="False")
    os.environ.update({k: env[k] for k in ("BENTOML_HOME", "MLKIT_PATHS_BENTOML_HOME", "BENTOML_DO_NOT_TRACK")})
    from mlkit.market.lifecycle import train_default
    print("production models:", train_default(home=home), flush=True)   # no-op when they are already stored
    n = a.requests
    counts = {(1, 1): n, (1, 16): max(n // 4, 10), (1000, 1): max(n // 8, 10), (1000, 16): max(n // 40, 3)}
    print(f"cores {os.cpu_count()}, {load_avg()} before the run", flush=True)
    results = {"http": [r for w in a.workers.split(",") for r in bench_http(env, counts, int(w))]}
    if not a.no_autogluon: results["autogluon"] = bench_autogluon(a.ag_time_limit, home)
    if a.json: Path(a.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

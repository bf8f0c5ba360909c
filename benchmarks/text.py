"""Speed of the text domain (issue 12), with the load average beside every figure (the machine is shared):
fit time and held-out accuracy of the default model against NB-SVM measured in the same run (rotten_tomatoes, three
classes, and fresh vs rotten, grouped split), then one-text latency through the HTTP API of a real
`bentoml serve mlkit.serve.text:TextService` on loopback, and a 10,000-row CSV through /text/predict_csv.

    python benchmarks/text.py [--requests 200] [--csv-rows 10000]
    python benchmarks/text.py --home DIR --skip-fits   # HTTP figures only, with the production text model
                                                       # already in DIR
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load() -> str: return "loadavg " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def target(value: float, limit: float, unit: str) -> str:
    "The issue's target beside a figure (issue 12; figures only, never asserted)."
    return f"[target < {limit:g} {unit}: {'met' if value < limit else 'MISSED'}]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def fits(home: Path) -> str:
    from mlkit import store
    from mlkit.text import registry as R
    from mlkit.text.data import load_text, split_text
    from mlkit.text.evaluate import compare
    with store.using_home(home):
        r = R.fit("logistic", None, "rotten_tomatoes", promote=True)
    print(f"default model (logistic) on rotten_tomatoes, 3 classes: fit {r.fit_seconds:.1f} s on {r.n_train:,} texts, "
          f"held-out accuracy {r.report.accuracy:.3f} [{r.report.accuracy_ci[0]:.3f}, {r.report.accuracy_ci[1]:.3f}] "
          f"{target(r.fit_seconds, 10, 's')}  ({load()})", flush=True)
    goals = {"rotten_tomatoes": 0.80, "rotten_tomatoes_polarity": 0.794}
    for name in ("rotten_tomatoes", "rotten_tomatoes_polarity"):
        td = load_text(name)
        cmp = compare(td, {"logistic (default)": ("logistic", None), "NB-SVM": ("nbsvm", None)}, split=split_text(td),
                      random_check=False)
        for m, rep in cmp.reports.items():
            print(f"{name:26s} {m:20s} accuracy {rep.accuracy:.3f} "
                  f"[{rep.accuracy_ci[0]:.3f}, {rep.accuracy_ci[1]:.3f}] "
                  f"(goal {goals[name]}) fit {cmp.fit_seconds[m]:6.1f} s  ({load()})", flush=True)
        d, b = cmp.reports["logistic (default)"], cmp.reports["NB-SVM"]
        print(f"{name:26s} default - NB-SVM: accuracy {d.accuracy - b.accuracy:+.3f}, fit time ratio "
              f"{cmp.fit_seconds['logistic (default)'] / cmp.fit_seconds['NB-SVM']:.2f}x  ({load()})", flush=True)
    return r.model_id


def http(home: Path, n: int, csv_rows: int):
    env = dict(os.environ, BENTOML_HOME=str(home), MLKIT_PATHS_BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true")
    port, log = free_port(), tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen([str(BIN / "bentoml"), "serve", "mlkit.serve.text:TextService", "--host", "127.0.0.1",
                             "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.monotonic()
        while True:
            if proc.poll() is not None: sys.exit(f"bentoml serve exited; see {log.name}")
            try:
                if requests.get(base + "/readyz", timeout=5).status_code == 200: break
            except requests.RequestException: pass
            if time.monotonic() - t > 300: sys.exit(f"not ready after 300 s; see {log.name}")
            time.sleep(0.5)
        from mlkit.text.data import load_text
        texts = load_text("rotten_tomatoes").frame["text"].sample(max(n, csv_rows), replace=True,
                                                                  random_state=0).tolist()
        s = requests.Session()
        # warm-up
        for tx in texts[:20]: s.post(base + "/text/predict", json={"text": tx}, timeout=60).raise_for_status()
        lat = []
        for tx in texts[:n]:
            t0 = time.perf_counter()
            s.post(base + "/text/predict", json={"text": tx}, timeout=60).raise_for_status()
            lat.append(time.perf_counter() - t0)
        lat = np.array(lat) * 1000
        print(f"HTTP /text/predict, one text, {n} sequential warm calls: p50 {np.median(lat):.1f} ms, "
              f"p95 {np.percentile(lat, 95):.1f} ms, {n / lat.sum() * 1000:.0f} predictions/s "
              f"{target(float(np.median(lat)), 20, 'ms p50')}  ({load()})", flush=True)
        import pandas as pd
        body = pd.DataFrame({"text": texts[:csv_rows]}).to_csv(index=False).encode()
        t0 = time.perf_counter()
        r = s.post(base + "/text/predict_csv", files={"file": ("t.csv", body, "text/csv")}, timeout=600)
        r.raise_for_status()
        dt = time.perf_counter() - t0
        print(f"HTTP /text/predict_csv, {csv_rows:,} rows ({len(body) / 1e6:.1f} MB): {dt:.2f} s, "
              f"{csv_rows / dt:,.0f} rows/s {target(dt, 2, 's') if csv_rows == 10_000 else ''}  ({load()})", flush=True)
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--csv-rows", type=int, default=10_000)
    ap.add_argument("--home", type=Path, help="BentoML home to use (default: a new temporary one)")
    ap.add_argument("--skip-fits", action="store_true",
                    help="skip the fits; the home must hold a production text model")
    a = ap.parse_args()
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    home = a.home or Path(tempfile.mkdtemp(prefix="mlkit-text-bench-"))
    print(f"nproc {os.cpu_count()}, {load()}", flush=True)
    if not a.skip_fits: fits(home)
    http(home, a.requests, a.csv_rows)

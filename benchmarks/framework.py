"""The model side (seed 000, issue 14), measured in one run on this machine, each figure printed beside
`os.getloadavg()` (the machine is shared: compare figures from the same run, not across runs):

1. ModelTrainer fit time on the digits (the default network, early stopping) and its held-out accuracy beside an SVM;
2. one-image prediction latency through the HTTP API (`bentoml serve mlkit.serve.vision:VisionService` on loopback,
   multipart PNG uploads, warm), p50 / p95;
3. ONNX Runtime vs scikit-learn: one-row and 1,000-row latency (ratios), int8 vs float accuracy and size, pruning;
4. walk-forward wall time with joblib's Ray backend vs loky (expect no gain on 2 cores: the point is the same code
   on a cluster).

    python benchmarks/framework.py                  # everything (a temporary model store; about 2-4 minutes quiet)
    python benchmarks/framework.py --skip-http --skip-ray
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def section(title: str):
    print(f"\n== {title}  [{load()}]", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def bench_fit():
    from mlkit.vision.classifier import train_digits
    section("1. ModelTrainer on the digits (dense 128-64 relu, softmax, adam, early stopping)")
    res = train_digits()
    print(f"fit {res.seconds:.1f} s for {len(res.model.history_)} epochs (best {res.model.best_epoch_}) "
          f"on {res.n_train} images  [{load()}]")
    print(f"held-out accuracy {res.accuracy:.4f} vs SVM {res.svm_accuracy:.4f} on {res.n_test} images")
    return res


def bench_http(res, n: int = 200):
    import httpx
    from mlkit.vision.classifier import save_result
    from mlkit.vision.data import digit_image, load_digits
    section("2. one image through the HTTP API (bentoml serve VisionService, loopback, warm)")
    home = Path(tempfile.mkdtemp(prefix="mlkit-bench-vision-"))
    tag = save_result(res, home=home)
    port = free_port()
    env = dict(os.environ, BENTOML_HOME=str(home), MLKIT_PATHS_BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true",
               MLKIT_PATHS_LOG_DIR=str(home / "logs"))
    p = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "mlkit.serve.vision:VisionService",
                          "--host", "127.0.0.1", "--port", str(port)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            if time.perf_counter() - t0 > 180: raise SystemExit("the service did not start in 180 s")
            time.sleep(0.3)
        print(f"ready in {time.perf_counter() - t0:.1f} s (model {tag})")
        buf = io.BytesIO(); digit_image(load_digits().X.iloc[11]).save(buf, format="PNG"); png = buf.getvalue()
        with httpx.Client(timeout=30) as c:
            for _ in range(20): c.post(f"{url}/vision/predict", files={"image": ("d.png", png, "image/png")})
            ts, runtime = [], None
            for _ in range(n):
                t = time.perf_counter()
                r = c.post(f"{url}/vision/predict", files={"image": ("d.png", png, "image/png")})
                ts.append(time.perf_counter() - t); runtime = r.json()["runtime"]
        ms = np.array(ts) * 1e3
        print(f"{n} sequential requests: p50 {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
              f"max {ms.max():.1f} ms (runtime {runtime}; goal p50 < 20 ms)  [{load()}]")
    finally:
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()


def bench_onnx(res):
    from mlkit.data import split
    from mlkit.onnx import OnnxModel, compare, prune, quantize_int8, to_onnx
    from mlkit.trainer import ModelTrainer
    from mlkit.vision.data import FEATURES, load_digits
    section("3. ONNX Runtime vs scikit-learn (digits, held-out rows)")
    d = load_digits()
    tr, te = split(d.X.assign(label=d.y), method="stratified", test_size=0.2, stratify="label", seed=res.split_seed)
    Xtr, ytr, Xte, yte = tr[FEATURES].to_numpy(), tr.label.to_numpy(), te[FEATURES].to_numpy(), te.label.to_numpy()
    net = res.model
    lin = ModelTrainer(model_type="logistic").fit(Xtr, ytr)
    rf = ModelTrainer(model_type="random_forest", random_state=0).fit(Xtr, ytr)
    pr = prune(net, 0.7)
    variants = {"net scikit-learn": net, "net ONNX": OnnxModel(to_onnx(net), net.classes_),
                "net ONNX int8": OnnxModel(quantize_int8(to_onnx(net)), net.classes_),
                "net pruned 70%": pr, "net pruned 70% ONNX int8": OnnxModel(quantize_int8(to_onnx(pr)), net.classes_),
                "logistic scikit-learn": lin, "logistic ONNX": OnnxModel(to_onnx(lin), lin.classes_),
                "forest scikit-learn": rf, "forest ONNX": OnnxModel(to_onnx(rf), rf.classes_)}
    t = compare(variants, Xte, yte, repeats=300)
    import pandas as pd
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(t.round({"accuracy": 4, "agreement": 4, "one_row_us": 1, "batch_ms": 2}))
    print(f"[{load()}]")
    for fam, sk, ox in (("net", "net scikit-learn", "net ONNX"), ("logistic", "logistic scikit-learn", "logistic ONNX"),
                        ("forest", "forest scikit-learn", "forest ONNX")):
        print(f"{fam}: ONNX one row {t.loc[sk, 'one_row_us'] / t.loc[ox, 'one_row_us']:.1f}x faster, "
              f"1,000 rows {t.loc[sk, 'batch_ms'] / t.loc[ox, 'batch_ms']:.1f}x faster")
    print(f"int8 vs float (net): accuracy {t.loc['net ONNX int8', 'accuracy']:.4f} "
          f"vs {t.loc['net ONNX', 'accuracy']:.4f}, "
          f"size {t.loc['net ONNX int8', 'size_bytes']:,} vs {t.loc['net ONNX', 'size_bytes']:,} bytes")


def bench_ray():
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from mlkit import datasets
    from mlkit.walkforward import walk_forward
    section("4. walk-forward: joblib loky vs Ray (local, in process) on this machine")
    px = datasets.load("sp500_daily")["Close"]; ret = px.pct_change()
    X = pd.concat({f"ret_lag{k}": ret.shift(k - 1) for k in range(1, 6)}, axis=1)
    y = (ret.shift(-1) > 0).astype(int)
    ok = X.notna().all(axis=1) & ret.shift(-1).notna(); X, y = X[ok], y[ok]
    kw = dict(window=500, step=21, progress=False, n_jobs=2)
    out = {}
    for b in ("loky", "ray"):
        if b == "ray":
            import ray
            t = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
            print(f"ray.init {time.perf_counter() - t:.1f} s  [{load()}]")
        walk_forward(X.iloc[:800], y.iloc[:800], LogisticRegression(), backend=b, **kw)   # warm the workers
        t = time.perf_counter(); out[b] = walk_forward(X, y, LogisticRegression(), backend=b, **kw)
        print(f"{b}: {len(out[b].folds)} folds in {time.perf_counter() - t:.2f} s  [{load()}]")
    same = out["ray"].predictions.equals(out["loky"].predictions)
    print(f"identical predictions: {same}. On 2 cores Ray adds scheduling and serialisation and gains nothing; "
          "the same call spreads the folds over every node of a cluster after ray.init(address=...).")
    import ray; ray.shutdown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-http", action="store_true"); ap.add_argument("--skip-onnx", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    a = ap.parse_args()
    print(f"mlkit framework benchmark, {os.cpu_count()} CPUs  [{load()}]")
    res = bench_fit()
    if not a.skip_onnx: bench_onnx(res)
    if not a.skip_http: bench_http(res)
    if not a.skip_ray: bench_ray()

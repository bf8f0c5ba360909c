"""Where should walk-forward folds run on this 2-core machine? Each configuration runs in a FRESH Python process.

Workload: the market report's walk-forward (real bundled BTC-USD daily bars, mlkit's default features, CatBoost with
300 iterations, rolling window 365, step 30, gap 1). Configurations:
  serial-1t   folds one after another, CatBoost on 1 thread
  serial-2t   folds one after another, CatBoost on 2 threads (its own thread pool)
  loky-cold   2 loky worker processes, 1 thread each, the first call in the process (the pool starts inside the timing)
  loky-warm   the same, second call in the same process (the pool is already running)
  ray-cold / ray-warm (with --ray): Ray's joblib backend, 2 CPUs, ray.init inside the cold timing
Prints wall seconds of the walk-forward call (and of the whole process) with the 1-minute load average before and
after each run, and checks that every configuration gives the same predictions. Asserts nothing about speed.
Run: `.venv/bin/python benchmarks/walkforward.py [--rounds N] [--ray]`.
"""
import argparse
import json
import os
import resource
import subprocess
import sys

CHILD = r"""
import json, sys, time, hashlib
t_start = time.perf_counter()
from mlkit.market.features import DEFAULT_SPECS, make_dataset
from mlkit.market.prices import load_prices
from mlkit.market.research import model_factory
from mlkit.walkforward import walk_forward
backend, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
prices = load_prices("BTC-USD", source="bundled")
X, y = make_dataset(prices, DEFAULT_SPECS, horizon=1)
times = []
for _ in range(calls):
    t0 = time.perf_counter()
    wf = walk_forward(X, y, model_factory("catboost", 42, threads=threads), window=365, step=30, gap=1,
                      backend=backend, n_jobs=2, progress=False)
    times.append(time.perf_counter() - t0)
digest = hashlib.sha256(wf.predictions.to_csv().encode()).hexdigest()[:16]
print(json.dumps(dict(times=times, process=time.perf_counter() - t_start, folds=len(wf.folds), rows=len(wf.predictions),
                      accuracy=wf.metrics["accuracy"], digest=digest)))
"""

CONFIGS = {"serial-1t": ("serial", 1, 1, 0), "serial-2t": ("serial", 2, 1, 0), "loky-cold": ("loky", 1, 1, 0),
           "loky-warm": ("loky", 1, 2, 1), "ray-cold": ("ray", 1, 1, 0), "ray-warm": ("ray", 1, 2, 1)}


def run(name: str) -> dict:
    backend, threads, calls, pick = CONFIGS[name]
    load0 = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-c", CHILD, backend, str(threads), str(calls)], capture_output=True, text=True,
                       timeout=1800)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if r.returncode != 0:
        return dict(name=name, failed=(r.stderr.strip().splitlines() or ["?"])[-1][:160], load_before=load0,
                    load_after=os.getloadavg()[0])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(name=name, seconds=out["times"][pick], process=out["process"], cpu=cpu, load_before=load0,
                load_after=os.getloadavg()[0], folds=out["folds"], digest=out["digest"], accuracy=out["accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--ray", action="store_true", help="also measure Ray's joblib backend (starts a local Ray)")
    ap.add_argument("--reverse", action="store_true",
                    help="start with the last configuration (rounds alternate the order)")
    args = ap.parse_args()
    names = [n for n in CONFIGS if args.ray or not n.startswith("ray")]
    print(f"walk-forward, BTC-USD bundled, CatBoost 300 it., window 365 step 30, {os.cpu_count()} CPUs; "
          "fresh process per run")
    print("cpu s: user+sys of the process and the workers it waited for "
          "(Ray's workers are not its children: not counted)")
    print(f"{'round':>5} {'config':<10} {'walk-forward s':>14} {'process s':>10} {'cpu s':>7} "
          f"{'load before':>11} {'load after':>10}  digest")
    results = []
    for k in range(args.rounds):
        for n in (names[::-1] if (k % 2 == 1) != args.reverse else names):
            r = run(n)
            if "failed" in r:
                print(f"{k + 1:>5} {n:<10} failed: {r['failed']} "
                      f"(load {r['load_before']:.2f} -> {r['load_after']:.2f})", flush=True)
                continue
            results.append(r)
            print(f"{k + 1:>5} {n:<10} {r['seconds']:>14.1f} {r['process']:>10.1f} {r['cpu']:>7.1f} "
                  f"{r['load_before']:>11.2f} {r['load_after']:>10.2f}  {r['digest']} "
                  f"({r['folds']} folds, accuracy {r['accuracy']:.4f})", flush=True)
    same = len({r["digest"] for r in results}) == 1
    print("predictions identical across configurations:", same)
    for n in names:
        ts = sorted(r["seconds"] for r in results if r["name"] == n)
        if ts: print(f"median {n:<10} {ts[len(ts) // 2]:.1f} s over {len(ts)} run(s)")


if __name__ == "__main__":
    main()

"""Speed and accuracy figures of the queues domain, side by side, with the load average beside each (not a test).

    python benchmarks/queues.py [--skip bank,arima,http] [--port 3917]

1. nyc_departures: the full cross-validation (every series of the hierarchy, 3 windows, h = 28 days) plus
   reconciliation (target < 20 s on 2 quiet cores);
2. bank_calls: rolling next-day cross-validation at five minutes (10 windows of 169 open slots; target < 60 s), then
   the default forecaster's 40 windows (40 days to calibrate the intervals on; see nbs/22_queues_forecast.ipynb);
3. the same nyc cross-validation with AutoARIMA alone: MASE and time as ratios. Prophet is compared on the same
   windows by benchmarks/queues_prophet.py (it is not in mlkit's lock: that script says how to install it apart);
4. a one-queue forecast through the HTTP API of `bentoml serve mlkit.serve.queues:QueuesService`: p50 once warm.

`--before` also times the previous configuration in the same run (every window refitted, STL smoothers evaluated at
every point), beside the current one (models fitted on the first window and run forward over the later ones, STL's
loess jumps at a tenth of the shortest season). The statsforecast/hierarchicalforecast imports are paid once per
process and timed apart (about 8 s here, most of it compiling: the environment sets PYTHONDONTWRITEBYTECODE).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import json


import mlkit.queues.forecast as F
from mlkit.queues.data import load_bundled
from mlkit.queues.forecast import cross_validate, default_forecaster, evaluate


def load() -> str: return "load average %.1f %.1f %.1f" % os.getloadavg()


def target(value: float, limit: float, unit: str) -> str:
    "The issue's target beside a figure (issue 11; never asserted)."
    return f"[target < {limit:g} {unit}: {'met' if value < limit else 'MISSED'}]"


def coverage(bt, model: str) -> str:
    "Interval coverage before (the model's own) and after calibration (held out, time-ordered)."
    own = {L: bt.table.get(f"{model} own {L}% coverage") for L in (80, 95)}
    seq = getattr(bt, "coverage_sequential", {})
    return "; ".join(f"{L} %: " + (f"own {own[L].mean():.3f}, " if own[L] is not None else "")
                     + f"calibrated held out {bt.coverage[L]['all']:.3f}, time-ordered "
                     f"{seq.get(L, {}).get('all', float('nan')):.3f}"
                     for L in (80, 95))


def imports() -> float:
    "Import the forecasting libraries once, timed apart from the cross-validations."
    t = time.perf_counter()
    import statsforecast.models, hierarchicalforecast.core, hierarchicalforecast.methods  # noqa: F401
    import utilsforecast.losses  # noqa: F401
    return time.perf_counter() - t


def _every_point(make):
    "The previous configuration's models: STL smoothers evaluated at every point (statsmodels' default)."
    def f(*a, **k):
        ms = make(*a, **k)
        for m in ms:
            if hasattr(m, "stl_kwargs"): m.stl_kwargs = {}
        return ms
    return f


def cv_time(name, before=False, **kw):
    "Seconds of the cross-validation plus evaluation (reconciliation, calibration) of a default forecaster."
    data = load_bundled(name)
    fc = default_forecaster(name)
    for k, v in kw.items(): setattr(fc, k, v)
    make = F.make_models
    if before: F.make_models, fc.cv_refit = _every_point(make), True
    try:
        t, c = time.perf_counter(), time.process_time()
        cv = cross_validate(data, fc.granularity, fc.h, fc.n_windows, fc.models, fc.input_size, fc.n_jobs, fc.cv_refit)
        bt = evaluate(cv, data, fc.granularity)
        bt.cpu_seconds = time.process_time() - c   # this process's CPU time: what the run costs on a quiet core
        return time.perf_counter() - t, bt
    finally: F.make_models = make


def http_p50(port: int, n: int = 50) -> float:
    env = dict(os.environ, BENTOML_DO_NOT_TRACK="true")
    log = open(os.path.join(os.path.dirname(__file__), "..", "logs", "bench_queues_serve.log"), "w")
    p = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "bentoml"), "serve",
                          "mlkit.serve.queues:QueuesService",
                          "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200: break
            except OSError: time.sleep(0.5)
            if p.poll() is not None or time.time() - t0 > 600:
                raise SystemExit("bentoml serve did not get ready (see logs/bench_queues_serve.log)")
        body = json.dumps({"queue_id": 3, "horizon": 14}).encode()
        def call():
            req = urllib.request.Request(f"http://127.0.0.1:{port}/queues/forecast", body,
                                         {"Content-Type": "application/json"})
            t = time.perf_counter(); urllib.request.urlopen(req, timeout=60).read(); return time.perf_counter() - t
        for _ in range(5): call()   # warm
        return statistics.median(call() for _ in range(n))
    finally:
        p.terminate(); p.wait(30)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: nyc, arima, bank, http")
    ap.add_argument("--port", type=int, default=3917)
    ap.add_argument("--before", action="store_true",
                    help="also time the previous configuration (every window refitted)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    s = None
    print(f"imports (once per process): {imports():.1f} s  [{load()}]")
    if "nyc" not in skip and a.before:
        s0, bt0 = cv_time("nyc_departures", before=True)
        print(f"BEFORE nyc_departures CV (every window refitted) + reconciliation: {s0:.1f} s (CPU "
              f"{bt0.cpu_seconds:.1f} s)  [{load()}]")
        print("  MASE per level: " + "; ".join(f"L{i}: final {bt0.table.loc[i, bt0.reconciliation]:.3f}"
                                               for i in bt0.table.index))
    if "nyc" not in skip:
        s, bt = cv_time("nyc_departures")
        t = bt.table
        print(f"nyc_departures CV (39 series, 3 x 28 days, fitted on the first window) + reconciliation: {s:.1f} s "
              f"(CPU {bt.cpu_seconds:.1f} s) "
              f"{target(s, 20, 's')}  [{load()}]")
        print(f"  reconciliation {bt.reconciliation}; MASE per level: " + "; ".join(
            f"L{i}: final {t.loc[i, bt.reconciliation]:.3f} / AutoETS {t.loc[i, 'AutoETS']:.3f} / seasonal naive "
            f"{t.loc[i, 'SeasonalNaive']:.3f}" for i in t.index))
        print(f"  coverage: {coverage(bt, 'AutoETS')}")
    if "arima" not in skip and s is not None:
        s2, bt2 = cv_time("nyc_departures", models=("AutoARIMA", "SeasonalNaive"))
        m1, m2 = bt.table[bt.reconciliation].mean(), bt2.table["AutoARIMA"].mean()
        print("AutoARIMA alone (Prophet: benchmarks/queues_prophet.py): "
              f"{s2:.1f} s, mean MASE over levels "
              f"{m2:.3f}; ratios AutoARIMA / mlkit: time {s2 / s:.2f}, MASE {m2 / m1:.3f}  [{load()}]")
    if "bank" not in skip and a.before:
        s0, bt0 = cv_time("bank_calls", before=True, n_windows=10)
        print(f"BEFORE bank_calls CV (10 windows, every window refitted, STL at every point): {s0:.1f} s "
              f"(CPU {bt0.cpu_seconds:.1f} s)  [{load()}]")
        print(f"  MSTL MASE {bt0.table['MSTL'].iloc[0]:.3f}; coverage: {coverage(bt0, 'MSTL')}")
    if "bank" not in skip:
        for n in (10, default_forecaster("bank_calls").n_windows):   # the 10 windows, then the default's
            s3, bt3 = cv_time("bank_calls", n_windows=n)
            t3 = bt3.table
            print(f"bank_calls next-day CV at 5 min ({n} windows of 169 slots, 6-week input): {s3:.1f} s "
                  f"(CPU {bt3.cpu_seconds:.1f} s) " + (target(s3, 60, 's') if n == 10 else "[default forecaster]")
                  + f"  [{load()}]")
            print(f"  MSTL MASE {t3['MSTL'].iloc[0]:.3f} vs seasonal naive {t3['SeasonalNaive'].iloc[0]:.3f} "
                  f"(ratio {t3['MSTL'].iloc[0] / t3['SeasonalNaive'].iloc[0]:.3f}, goal <= 0.92)")
            print(f"  coverage: {coverage(bt3, 'MSTL')}")
    if "http" not in skip:
        p50 = 1000 * http_p50(a.port)
        print(f"one-queue forecast over HTTP (warm, 50 calls): p50 {p50:.1f} ms {target(p50, 100, 'ms')}  [{load()}]")

"""Prophet beside mlkit's default queue forecasters on the same rolling-origin windows (a benchmark, not a test).

    python benchmarks/queues_prophet.py [--prophet-python PATH] [--skip bank] [--bank-windows 10]

For every series and window of mlkit's cross-validation (nyc_departures: the 39 queues of the hierarchy, 3 windows of
28 days; bank_calls: 10 next-day windows of 169 open five-minute slots), Prophet 1.5 with its defaults (one model per
series, refitted at every origin on the history mlkit sees: all of it for nyc_departures, the last six weeks for
bank_calls; forecasts clipped at 0 as mlkit's are; its 80 and 95 % intervals from one seeded set of 1000 predictive
samples) is scored with the same MASE (utilsforecast's, scaled on the history before the first origin) and the same
coverage as mlkit's final forecast (the series' chosen model, reconciled across the hierarchy, with calibrated
intervals; mlkit's default fits on the first window and runs forward, as its forecasters do). Both run in one
invocation, one after the other, and the figures are printed as ratios with the load average.

Prophet is not one of mlkit's dependencies (it is not in requirements.lock) and nothing is installed or downloaded at
run time: its wheel carries the compiled Stan model. Install it into a throwaway environment with the lock's versions:

    python3.11 -m venv /tmp/prophet-venv
    .venv/bin/uv pip install --python /tmp/prophet-venv/bin/python prophet==1.5.0 -c requirements.lock
    .venv/bin/python benchmarks/queues_prophet.py --prophet-python /tmp/prophet-venv/bin/python

(`prophet==1.5.0` also resolves beside requirements.lock without moving a pin: it adds cmdstanpy, stanio and holidays.)
The Prophet side runs in that interpreter (`--worker`, which imports only pandas, numpy and prophet); the mlkit side
runs in this one.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

INSTALL = ("Prophet is not importable by {py}. It is not one of mlkit's dependencies; install it into a throwaway "
           "environment (nothing is downloaded at run time):\n"
           "    python3.11 -m venv /tmp/prophet-venv\n"
           "    .venv/bin/uv pip install --python /tmp/prophet-venv/bin/python prophet==1.5.0 -c requirements.lock\n"
           "    .venv/bin/python benchmarks/queues_prophet.py --prophet-python /tmp/prophet-venv/bin/python")


def load() -> str: return "load average %.1f %.1f %.1f" % os.getloadavg()


def has_prophet(python: str) -> bool:
    "Whether `python` can import prophet (checked in a subprocess, so that this one never imports it)."
    r = subprocess.run([python, "-c", "import prophet"], capture_output=True)
    return r.returncode == 0


# ---- the Prophet side: runs in the interpreter that has prophet; imports neither mlkit nor statsforecast ----------
def worker(folder: str) -> None:
    "Fit Prophet per series and origin on the windows written by the mlkit side; write its forecasts and timings."
    import logging
    logging.getLogger("prophet.plot").disabled = True   # 'Importing plotly failed': the benchmark draws nothing
    t0 = time.perf_counter()
    from prophet import Prophet
    import_s = time.perf_counter() - t0
    logging.getLogger("cmdstanpy").disabled = True   # one 'Chain [1] start/done processing' pair per fit
    spec = json.load(open(os.path.join(folder, "spec.json")))
    Y = pd.read_csv(os.path.join(folder, "Y.csv"), dtype={"unique_id": str}, parse_dates=["ts"])
    np.random.seed(0)   # Prophet draws its predictive samples from numpy's global generator: same figures every run
    out, t = [], time.perf_counter()
    for c in spec["cutoffs"]:
        for uid, y in Y.groupby("unique_id", sort=False):
            past = y[y.ds <= c]
            if spec["input_size"]: past = past.tail(spec["input_size"])
            future = y[(y.ds > c) & (y.ds <= c + spec["h"])]
            m = Prophet(uncertainty_samples=1000).fit(past[["ts", "y"]].rename(columns={"ts": "ds"}))
            fut = future[["ts"]].rename(columns={"ts": "ds"})
            mean = m.predict(fut).yhat.to_numpy()
            s = m.predictive_samples(fut)["yhat"]            # (periods, samples)
            row = dict(unique_id=uid, ds=future.ds.to_numpy(), cutoff=c, Prophet=np.maximum(mean, 0))
            for L in (80, 95):
                lo, hi = np.quantile(s, [0.5 - L / 200, 0.5 + L / 200], axis=1)
                row[f"Prophet-lo-{L}"], row[f"Prophet-hi-{L}"] = np.maximum(lo, 0), np.maximum(hi, 0)
            out.append(pd.DataFrame(row))
    pd.concat(out).to_csv(os.path.join(folder, "prophet.csv"), index=False)
    import prophet
    json.dump(dict(seconds=time.perf_counter() - t, import_seconds=import_s, fits=len(out),
                   version=prophet.__version__), open(os.path.join(folder, "timing.json"), "w"))


# ---- the mlkit side ------------------------------------------------------------------------------------------------
def mlkit_run(name: str, **kw):
    "mlkit's default forecaster's cross-validation and evaluation (seconds, cv frame, Backtest)."
    from mlkit.queues.data import load_bundled
    from mlkit.queues.forecast import cross_validate, default_forecaster, evaluate
    data, fc = load_bundled(name), default_forecaster(name)
    for k, v in kw.items(): setattr(fc, k, v)
    t = time.perf_counter()
    cv = cross_validate(data, fc.granularity, fc.h, fc.n_windows, fc.models, fc.input_size, fc.n_jobs, fc.cv_refit)
    bt = evaluate(cv, data, fc.granularity)
    return time.perf_counter() - t, cv, bt, data, fc


def prophet_run(python: str, name: str, cv: pd.DataFrame, data, fc) -> tuple[pd.DataFrame, dict, float]:
    "Prophet's forecasts on the windows of `cv`, from a subprocess in `python` (its frame, timing, wall seconds)."
    from mlkit.queues.forecast import _long
    Y, _, _, idx = _long(data, fc.granularity)
    Y = Y.assign(ts=idx[Y.ds.to_numpy()])
    with tempfile.TemporaryDirectory() as d:
        Y.to_csv(os.path.join(d, "Y.csv"), index=False)
        json.dump(dict(cutoffs=sorted(int(c) for c in cv.cutoff.unique()), h=int(fc.h),
                       input_size=fc.input_size), open(os.path.join(d, "spec.json"), "w"))
        t = time.perf_counter()
        subprocess.run([python, os.path.abspath(__file__), "--worker", d], check=True)
        wall = time.perf_counter() - t
        p = pd.read_csv(os.path.join(d, "prophet.csv"), dtype={"unique_id": str})
        timing = json.load(open(os.path.join(d, "timing.json")))
    return p.merge(cv[["unique_id", "ds", "cutoff", "y"]], on=["unique_id", "ds", "cutoff"], how="inner"), timing, wall


def prophet_scores(p: pd.DataFrame, data, fc) -> pd.DataFrame:
    "Per hierarchy level: Prophet's mean MASE and its 80/95 % coverage, scored as mlkit's evaluate scores its own."
    from mlkit.queues.forecast import _levels_of, _long, _mase, seasons
    Y, _, _, _ = _long(data, fc.granularity)
    lv = _levels_of(data)
    m = _mase(p, Y, ["Prophet"], seasons(data, fc.granularity)[0])
    out = pd.DataFrame({"mase": m.Prophet.groupby(lv.reindex(m.index).to_numpy()).mean()})
    for L in (80, 95):
        inside = (p.y >= p[f"Prophet-lo-{L}"]) & (p.y <= p[f"Prophet-hi-{L}"])
        out[f"cov{L}"] = inside.groupby(p.unique_id.map(lv).to_numpy()).mean()
    return out


def compare(python: str, name: str, **kw) -> None:
    s, cv, bt, data, fc = mlkit_run(name, **kw)
    print(f"{name}: mlkit default ({', '.join(sorted(set(bt.chosen.values())))} chosen per series, reconciliation "
          f"{bt.reconciliation}; {bt.n_windows} windows of {bt.h} {bt.granularity} steps): {s:.1f} s  [{load()}]")
    p, timing, wall = prophet_run(python, name, cv, data, fc)
    print(f"{name}: Prophet {timing['version']} ({timing['fits']} fits, one per series and origin): "
          f"{timing['seconds']:.1f} s fitting and predicting ({wall:.1f} s with its process and "
          f"{timing['import_seconds']:.1f} s import)  [{load()}]")
    ps, t = prophet_scores(p, data, fc), bt.table
    final = bt.reconciliation if bt.reconciliation != "none" else None
    rows = []
    for lev in t.index:
        mm = float(t.loc[lev, final]) if final else float(bt.per_series[bt.per_series.chosen.iloc[0]].iloc[0])
        rows.append({"level": lev, "series": int((data.queues.level == lev).sum()),
                     "MASE mlkit": mm, "MASE Prophet": ps.loc[lev, "mase"], "ratio P/m": ps.loc[lev, "mase"] / mm,
                     "SeasonalNaive": float(t.loc[lev, "SeasonalNaive"]),
                     **{f"cov{L} mlkit held-out": bt.coverage[L].get(str(lev)) for L in (80, 95)},
                     **{f"cov{L} mlkit time-ordered": bt.coverage_sequential[L].get(str(lev)) for L in (80, 95)},
                     **{f"cov{L} Prophet": ps.loc[lev, f"cov{L}"] for L in (80, 95)}})
    print(pd.DataFrame(rows).set_index("level").round(3).to_string())
    print(f"{name}: time ratio Prophet / mlkit {timing['seconds'] / s:.2f} (fitting and predicting) "
          f"{wall / s:.2f} (with its process); mean MASE ratio over levels "
          f"{np.mean([r['ratio P/m'] for r in rows]):.3f}  [{load()}]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prophet-python", default=sys.executable,
                    help="an interpreter that can import prophet (default: this one)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: nyc, bank")
    ap.add_argument("--bank-windows", type=int, default=10, help="bank_calls next-day windows (the issue's 10)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: worker(a.worker); sys.exit(0)
    if not has_prophet(a.prophet_python): sys.exit(INSTALL.format(py=a.prophet_python))
    skip = set(filter(None, a.skip.split(",")))
    t0 = time.perf_counter()
    import mlkit.queues.forecast  # noqa: F401
    import statsforecast.models, hierarchicalforecast.core, utilsforecast.losses  # noqa: F401,E401
    print(f"mlkit/statsforecast imports (once per process): {time.perf_counter() - t0:.1f} s  [{load()}]")
    if "nyc" not in skip: compare(a.prophet_python, "nyc_departures")
    if "bank" not in skip: compare(a.prophet_python, "bank_calls", n_windows=a.bank_windows)

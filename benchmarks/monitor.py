"""Speed and detection figures of mlkit.monitor (issue 13), printed with the load average; not run by `make test`.

    python benchmarks/monitor.py [--amqp amqp://guest:guest@127.0.0.1:5672//] [--runs 200] [--rows 10000]
                                 [--lat-rows 1000]

1. Throughput through all four roles (one process, one thread per role) for the embedded broker and, with --amqp
   (or MLKIT_TEST_AMQP_URL), RabbitMQ: --rows diabetes rows (the 442 replayed in order again, ids unique) as fast as the
   producer can send them (a batch of [monitor] batch rows per broker message). A row is three messages (features,
   y_true, y_pred), each checked against its schema, matched, scored and stored once; both rates are printed.
2. End-to-end latency (producer send -> score committed) p50/p99 at 100 rows/s (one row per broker message),
   --lat-rows rows.
3. The drift monitor on the issue's scenario: bootstrap streams of the rows the model did not train on, bmi + 6 from
   message 500 (a declared perturbation of real rows): false alarms per 500 stable messages, share detected, median
   delay (goals: <= 0.05, >= 90 %, <= 100 messages); and the real ordered replay: a model trained on the lower half of
   the patients by BMI, the other half streamed in BMI order (the first alert's position).
"""
import argparse, os, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--amqp", default=os.environ.get("MLKIT_TEST_AMQP_URL"))
ap.add_argument("--runs", type=int, default=200, help="replayed streams for the drift figures")
ap.add_argument("--rows", type=int, default=10_000, help="rows streamed for the throughput figure")
ap.add_argument("--lat-rows", type=int, default=1000, help="rows streamed at 100 rows/s for the latency figure")
ap.add_argument("--skip", nargs="*", default=[], choices=["embedded", "rabbitmq", "drift"], help="parts to leave out")
a = ap.parse_args()

from mlkit import datasets, store
from mlkit.monitor.drift import shift_scenario
from mlkit.monitor.model import FEATURES, TARGET, train
from mlkit.monitor.stream import monitor_stream, scores_frame


def load(): return "load %.1f %.1f %.1f" % os.getloadavg()


tmp = Path(tempfile.mkdtemp()); home = tmp / "bentoml"
t = time.perf_counter(); tag = train(home=home)
print(f"trained {tag} (drift calibration with 200 simulations) in {time.perf_counter() - t:.1f} s  [{load()}]")
brokers = [b for b in [("embedded", "memory://")] + ([("rabbitmq", a.amqp)] if a.amqp else []) if b[0] not in a.skip]

with store.using_home(home):
    for name, url in brokers:
        db = f"sqlite:///{tmp}/{name}.db"
        run = f"bench-{name}-{int(time.time())}"
        t = time.perf_counter()
        s = monitor_stream("all", url=url, prefix=run, run=run, db=db, interval_s=0, limit=a.rows, timeout=1200)
        dt = time.perf_counter() - t
        df = scores_frame(run, db)
        span = df.t_scored.max() - df.t_sent.min()
        assert s.scored == a.rows and df.id.is_unique, f"{s.scored} scored of {a.rows}"
        print(f"{name:9s} throughput: {s.scored:,} rows through 4 roles in {span:.2f} s = "
              f"{s.scored / span:,.0f} rows/s = {3 * s.scored / span:,.0f} messages/s (features, y_true, y_pred); "
              f"wall incl. start {dt:.1f} s  [{load()}]")
        run = run + "-lat"
        s = monitor_stream("all", url=url, prefix=run, run=run, db=db, interval_s=0.01, limit=a.lat_rows, timeout=1200)
        df = scores_frame(run, db)
        lat, span = (df.t_scored - df.t_sent) * 1000, df.t_sent.max() - df.t_sent.min()
        print(f"{name:9s} latency at {len(df) / span:.0f} rows/s: p50 {lat.quantile(.5):.1f} ms, "
              f"p99 {lat.quantile(.99):.1f} ms, max {lat.max():.1f} ms ({len(lat)} rows)  [{load()}]")

    model, card, _ = store.load_model("monitor-diabetes")
if "drift" in a.skip: raise SystemExit(0)
df = datasets.load("diabetes")
unseen = np.setdiff1d(np.arange(len(df)), card["extra"]["train_rows"])
X, y = df.iloc[unseen][FEATURES].to_numpy(float), df.iloc[unseen][TARGET].to_numpy(float)
t = time.perf_counter()
r = shift_scenario(model.drift_, lambda A: model.predict(pd.DataFrame(A, columns=FEATURES)), X, y, "bmi", 6.0,
                   start=500, after=500, runs=a.runs, seed=7)
print(f"drift, bmi + 6 from message 500, {r.runs} runs on the {len(unseen)} unseen rows: "
      f"{r.false_alarms_per_horizon:.3f} false alarms "
      f"per 500 stable messages, {r.detected:.0%} detected, median delay {r.median_delay} messages "
      f"(p90 {np.percentile(r.delays, 90) if r.delays else float('nan'):.0f}); "
      f"{(time.perf_counter() - t) / r.runs / 1000 * 1e6:.0f} us per message  [{load()}]")
r0 = shift_scenario(model.drift_, lambda A: model.predict(pd.DataFrame(A, columns=FEATURES)), X, y, "bmi", 0.0,
                    start=500, after=500, runs=a.runs, seed=8)
print(f"drift, no shift (1000 stable messages), {r0.runs} runs: {r0.false_alarms_per_horizon:.3f} false alarms "
      f"per 500 in the first half, {r0.detected:.0%} of runs with an alarm in the second half  [{load()}]")
# the real ordered replay: a model trained on the lower half of the patients by BMI, then the other half streamed in
# BMI order
with store.using_home(home):
    train(order="bmi", train_frac=0.5, name="monitor-diabetes-bmi", home=home)
    mb, cb, _ = store.load_model("monitor-diabetes-bmi")
trained = set(cb["extra"]["train_rows"])
# unseen rows, in BMI order
rows = np.array([r for r in np.argsort(df.bmi.to_numpy(), kind="stable") if r not in trained])
Xo, yo = df.iloc[rows][FEATURES].to_numpy(float), df.iloc[rows][TARGET].to_numpy(float)
al = mb.drift_.reset().update_many([str(i) for i in range(len(rows))], Xo, yo - mb.predict_rows(Xo))
first = al[0] if al else None
print(f"drift, real replay ordered by bmi (trained on the {len(cb['extra']['train_rows'])} lowest, "
      f"{len(rows)} higher streamed): "
      + (f"first alert at message {first.position} ({first.detector}, "
         f"statistic {first.statistic:.3f} > {first.threshold:.3f}), {len(al)} alerts" if first else "no alert")
      + f"  [{load()}]")

"""The recommender's speed: BiasedMF fit time on the 100,004 MovieLens ratings, one recommendation in process (known
user, new user with genres) and through the route `/recsys/recommend` (in-process ASGI app, a temporary model store).
Prints figures with the load average beside them; asserts nothing.

    .venv/bin/python benchmarks/recsys.py
"""
import os
import statistics
import tempfile
import time

from mlkit import store
from mlkit.recsys.evaluate import mf_params
from mlkit.recsys.mf import RATING, BiasedMF, load_ratings
from mlkit.recsys.recommend import train_default


def load() -> str: return "load %.1f %.1f %.1f" % os.getloadavg()

def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(1000 * (time.perf_counter() - t))
    return out

def show(what: str, ms: list[float]):
    ms = sorted(ms)
    print(f"{what:44s} p50 {statistics.median(ms):9.2f} ms  p95 {ms[int(0.95 * (len(ms) - 1))]:9.2f} ms  "
          f"(n={len(ms)}; {load()})", flush=True)


ratings = load_ratings()
print(f"BiasedMF {mf_params()} on {len(ratings):,} ratings; {os.cpu_count()} CPUs")
for k in (0, 10, 20):
    show(f"fit BiasedMF(n_factors={k})",
         timed(lambda k=k: BiasedMF(**{**mf_params(), "n_factors": k}).fit(ratings, ratings[RATING]), 3))

with tempfile.TemporaryDirectory() as home, store.using_home(home):
    train_default(evaluate=False)
    from starlette.testclient import TestClient
    from mlkit.recsys.recommend import load_recommender
    from mlkit.serve.recsys import RecsysService
    rec = load_recommender()[0]
    show("recommend(user 15, k=10), in process", timed(lambda: rec.recommend(15, k=10), 200))
    show("recommend(new user, Comedy+Romance, k=10)",
         timed(lambda: rec.recommend(None, k=10, genres=["Comedy", "Romance"]), 200))
    with TestClient(RecsysService.to_asgi()) as c:
        c.post("/recsys/recommend", json={"user_id": 1})
        show("POST /recsys/recommend user 15 (ASGI, warm)",
             timed(lambda: c.post("/recsys/recommend", json={"user_id": 15, "k": 10}), 200))
        show("POST /recsys/recommend new user (ASGI, warm)",
             timed(lambda: c.post("/recsys/recommend", json={"genres": ["Comedy", "Romance"], "k": 10}), 200))

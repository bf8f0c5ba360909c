"""Load time of every bundled data set (target: well under a second each). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/datasets.py
"""
import statistics
import time

from mlkit import datasets

print(f"{'data set':18s} {'rows':>7s} {'median ms':>10s} {'max ms':>8s}   (load with sha256 check, 7 runs)")
for name in datasets.names():
    times = []
    for _ in range(7):
        t = time.perf_counter(); df = datasets.load(name); times.append(1000 * (time.perf_counter() - t))
    print(f"{name:18s} {len(df):7d} {statistics.median(times):10.1f} {max(times):8.1f}")

"""mlkit.core.read_parquet reads what pandas reads, without starting a thread (issue 16: a child process that read a
Parquet file aborted now and then at exit, "terminate called without an active exception", apache/arrow#34314)."""
import json
import subprocess
import sys

CHILD = r"""
import json, os
import pandas as pd
import mlkit.datasets as ds
from mlkit.core import read_parquet
threads = lambda: len(os.listdir("/proc/self/task"))
files = sorted(ds.DATA_DIR.glob("*.parquet"))
before = threads()
frames = {f.name: read_parquet(f) for f in files}
after = threads()
same = {}
for f in files:
    a, b = pd.read_parquet(f), frames[f.name]
    same[f.name] = bool(a.equals(b) and a.dtypes.equals(b.dtypes) and a.index.equals(b.index)
                        and type(a.index) is type(b.index) and a.attrs == b.attrs)
print(json.dumps({"before": before, "after": after, "same": same}))
"""


def test_read_parquet_matches_pandas_and_starts_no_thread():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(got["same"]) >= 8, got                       # every bundled data set
    assert all(got["same"].values()), got["same"]
    assert got["after"] == got["before"], got               # pandas.read_parquet starts 3 here

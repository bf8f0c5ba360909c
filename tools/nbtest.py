"""Run each notebook's tests with nbdev-test in its own process (two at a time), so that no notebook sees another's
module state (SQLAlchemy metadata, BentoML's store, yfinance's session). Fails when a notebook fails or none ran.

    python tools/nbtest.py [--flags slow] [--workers 2] [NOTEBOOK ...]
"""
import argparse, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("notebooks", nargs="*", type=Path)
ap.add_argument("--flags", default="", help="nbdev-test flags to run too, e.g. slow")
ap.add_argument("--workers", type=int, default=2)
a = ap.parse_args()
# nbs/reports are papermill templates (tested by pytest)
nbs = a.notebooks or sorted(p for p in (ROOT / "nbs").glob("*.ipynb"))
if not nbs: sys.exit("no notebooks to test")
exe = str(Path(sys.executable).parent / "nbdev-test")


def run(nb: Path):
    t = time.perf_counter()
    r = subprocess.run([exe, str(nb), *(["--flags", a.flags] if a.flags else [])], capture_output=True, text=True,
                       cwd=ROOT)
    out = r.stdout + r.stderr
    ok = r.returncode == 0 and "No files were eligible" not in out
    return nb, ok, time.perf_counter() - t, out


failed = []
with ThreadPoolExecutor(a.workers) as ex:
    for nb, ok, dt, out in ex.map(run, nbs):
        print(f"{'ok  ' if ok else 'FAIL'} {nb.name:40s} {dt:6.1f} s", flush=True)
        if not ok: failed.append(nb.name); print(out[-6000:], flush=True)
print(f"{len(nbs) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)

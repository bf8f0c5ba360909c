"""Time `make run` until the bento answers `/readyz`, several times in a row in one clone (issue 10: a second run
serving in under a minute), with the load average beside each run and the time of each step from make's own
`== HH:MM:SS step` lines. Each run's server is stopped before the next; `git status` is checked after the last.
First it measures what the installed bytecode saves: the CPU time of importing the heaviest packages compiled from
source (an empty PYTHONPYCACHEPREFIX, as on a machine with PYTHONDONTWRITEBYTECODE=1 and no bytecode) and from the
`.pyc` files `make install` writes.

    python benchmarks/make_run.py                  # a fresh clone of HEAD in a temporary folder, two runs
    python benchmarks/make_run.py --repo /tmp/mr   # an existing clone (its venv and store are kept)

Not run by `make test`."""
import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^== (\d\d:\d\d:\d\d) (.+?)(?: \(|$)")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r: return r.status == 200
    except OSError: return False


HEAVY = "import gradio, sklearn.ensemble, pandas, catboost"


def import_cpu(python: str, from_source: bool) -> float:
    "CPU seconds (user + system) of importing `HEAVY` in a fresh interpreter."
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **({"PYTHONPYCACHEPREFIX": empty} if from_source else {})}
        subprocess.run([python, "-c", HEAVY], env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def one_run(repo: Path, port: int, timeout: float, log: Path) -> dict:
    "Start `make run`, wait for /readyz, stop the server; seconds, load before/after and the steps' start times."
    load0, t0 = os.getloadavg()[0], time.monotonic()
    env = {**os.environ, "MLKIT_SERVING_PORT": str(port)}
    with open(log, "w") as out:
        p = subprocess.Popen(["make", "run"], cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            while not _ready(port):
                if p.poll() is not None: raise SystemExit(f"make run exited with {p.returncode}; see {log}")
                if time.monotonic() - t0 > timeout: raise SystemExit(f"not ready after {timeout:.0f} s; see {log}")
                time.sleep(0.5)
            seconds = time.monotonic() - t0
        finally:
            os.killpg(p.pid, signal.SIGTERM)
            try: p.wait(20)
            except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()
    steps = [m.groups() for line in log.read_text().splitlines() if (m := STEP.match(line))]
    return dict(seconds=seconds, load=(load0, os.getloadavg()[0]), steps=steps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, help="an existing clone (default: a fresh clone of HEAD)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--port", type=int, default=3931)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one run may take to be ready")
    a = ap.parse_args(argv)
    tmp = None
    if a.repo is None:
        tmp = tempfile.mkdtemp(prefix="mlkit-make-run-")
        a.repo = Path(tmp) / "mlkit"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(a.repo)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=a.repo, capture_output=True, text=True).stdout
    print(f"make run in {a.repo} at {commit.strip()} ({os.cpu_count()} cores)")
    python = str(a.repo / ".venv" / "bin" / "python")
    if Path(python).exists():
        src, pyc = import_cpu(python, True), import_cpu(python, False)
        print(f"'{HEAVY}': {src:.1f} s CPU from source, {pyc:.1f} s with bytecode ({src / pyc:.1f}x; "
              f"load {os.getloadavg()[0]:.2f})", flush=True)
    for i in range(1, a.runs + 1):
        r = one_run(a.repo, a.port, a.timeout, a.repo / f"make-run-{i}.log")
        steps = ", ".join(f"{name} at {t}" for t, name in r["steps"])
        print(f"run {i}: ready after {r['seconds']:.1f} s (load {r['load'][0]:.2f} -> {r['load'][1]:.2f}); {steps}",
              flush=True)
        (a.repo / f"make-run-{i}.log").unlink()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=a.repo, capture_output=True, text=True).stdout
    print("git status after the runs:", "clean" if not dirty.strip() else f"\n{dirty}")
    return 0 if not dirty.strip() else 1


if __name__ == "__main__":
    sys.exit(main())

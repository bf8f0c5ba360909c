"""No environment changes at import time (issue 16): importing every mlkit module leaves `os.environ` as it was, the
model store's home comes from `store_home` (argument, `using_home`, `BENTOML_HOME`, the setting), a save sends BentoML
no usage event and does not touch BentoML's default home, and `mlkit serve` hands the store to `bentoml serve`
explicitly. Each check runs in a child interpreter whose environment names no BentoML home."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, free_port, stop_server


def clean_env(tmp_path, **kw) -> dict:
    "This environment without any BentoML home or tracking setting; HOME is a temporary folder (BentoML's default)."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "MLKIT_PATHS_BENTOML_HOME"))}
    (tmp_path / "home").mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "home"), "MLKIT_PATHS_LOG_DIR": str(tmp_path / "logs"), **kw}


def run_child(code: str, env: dict, timeout=600) -> dict:
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


IMPORT_ALL = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
import mlkit
names = sorted(m.name for m in pkgutil.walk_packages(mlkit.__path__, "mlkit.")
               if not m.name.startswith("mlkit.marketplace.migrations."))   # alembic's scripts: run by alembic
failed = {}
for n in names:
    try: importlib.import_module(n)
    except Exception as e: failed[n] = repr(e)[:300]
after = dict(os.environ)
changed = {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}
skip = {"mlkit", "__main__", "__mp_main__", *sys.stdlib_module_names}
third = sorted({n.split(".")[0] for n in sys.modules} - skip)
print(json.dumps({"modules": names, "failed": failed, "changed": changed, "third_party": third}))
"""

# the same environment changes made by the third-party packages alone (scikit-learn and joblib set two OpenMP
# variables at import), so that the comparison holds mlkit to its own code
IMPORT_THIRD_PARTY = """
import importlib, json, os, sys
before = dict(os.environ)
for n in json.loads(sys.argv[1]):
    try: importlib.import_module(n)
    except Exception: pass
after = dict(os.environ)
print(json.dumps({k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after))
                  if before.get(k) != after.get(k)}))
"""


def test_importing_every_module_leaves_the_environment_alone(tmp_path):
    env = clean_env(tmp_path)
    out = run_child(IMPORT_ALL, env)
    assert "mlkit.store" in out["modules"] and "mlkit.serve.service" in out["modules"] and len(out["modules"]) > 50
    assert out["failed"] == {}
    r = subprocess.run([sys.executable, "-c", IMPORT_THIRD_PARTY, json.dumps(out["third_party"])], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    theirs = json.loads(r.stdout.strip().splitlines()[-1])
    assert not [k for k in theirs if k.startswith(("BENTOML_", "MLKIT_"))], theirs
    ours = {k: v for k, v in out["changed"].items() if theirs.get(k) != v}
    assert ours == {}, f"importing mlkit changed the environment: {ours} (third-party packages alone: {theirs})"
    assert not (tmp_path / "home" / "bentoml").exists()       # BentoML's default home: not created by an import


SAVE = """
import json, logging, os, sys
import numpy as np, pandas as pd
from mlkit import store
from mlkit.core import settings
from mlkit.models import make_model
events = []
class Seen(logging.Handler):
    def emit(self, record): events.append(record.getMessage())
usage = logging.getLogger("bentoml._internal.utils.analytics.usage_stats")
usage.addHandler(Seen()); usage.setLevel(logging.INFO)
env = dict(os.environ)
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"]); y = (X.a > 0).astype(int)
tag = store.save_model("env-check", make_model("logistic").fit(X, y))
model, card, got = store.load_model(tag)
out = dict(tag=tag, loaded=got, home=str(store.store_home()), setting=str(settings.path("bentoml_home")),
           folder=str(store._get(tag).path), env_unchanged=dict(os.environ) == env, events_mlkit=len(events),
           default_home_after_mlkit=os.path.exists(os.path.expanduser("~/bentoml")))
import bentoml                                  # the control: BentoML's own create, same store, does send its event
with bentoml.models.create("env-check-raw", _model_store=store._store()) as bm: pass
out.update(events_bentoml=len(events), tracked=[e[:40] for e in events])
print(json.dumps(out))
"""


@pytest.mark.parametrize("bentoml_home", [False, True], ids=["setting", "BENTOML_HOME"])
def test_a_saved_model_lands_in_the_store_home_and_sends_no_usage_event(tmp_path, bentoml_home):
    setting, user = tmp_path / "setting-home", tmp_path / "user-home"
    # __BENTOML_DEBUG_USAGE: BentoML logs a usage event instead of posting it, so the control never reaches the network
    env = clean_env(tmp_path, MLKIT_PATHS_BENTOML_HOME=str(setting), __BENTOML_DEBUG_USAGE="true",
                    **({"BENTOML_HOME": str(user)} if bentoml_home else {}))
    out = run_child(SAVE, env)
    expected = (user if bentoml_home else setting).resolve()
    assert out["setting"] == str(setting.resolve())
    assert out["home"] == str(expected) and out["loaded"] == out["tag"]
    assert Path(out["folder"]).is_relative_to(expected / "models" / "env-check"), out["folder"]
    assert (expected / "mlkit_registry.json").exists() is False          # saved as a candidate: no promotion
    assert not ((setting if bentoml_home else user) / "models").exists()  # the other home untouched
    assert out["env_unchanged"] and out["events_mlkit"] == 0 and out["default_home_after_mlkit"] is False
    # the control shows the detector works: bentoml.models.create sends its event (and writes ~/bentoml/client_id)
    assert out["events_bentoml"] == 1 and out["tracked"][0].startswith("Tracking Payload"), out["tracked"]


def test_mlkit_serve_hands_the_store_home_to_bentoml(tmp_path):
    "`mlkit serve` execs `bentoml serve` with BENTOML_HOME (the setting's home here) and tracking off."
    setting = tmp_path / "setting-home"
    env = clean_env(tmp_path, MLKIT_PATHS_BENTOML_HOME=str(setting))
    port, log = free_port(), tmp_path / "serve.log"
    proc = subprocess.Popen([str(BIN / "mlkit"), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, cmdline = time.monotonic() + 120, ""
        while "bentoml" not in cmdline:                # after exec the same pid runs `bentoml serve`
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"mlkit serve did not exec bentoml: {log.read_text()[-3000:]}"
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            time.sleep(0.1)
        child = dict(v.split("=", 1) for v in Path(f"/proc/{proc.pid}/environ").read_bytes().decode().split("\0")
                     if "=" in v)
        assert child["BENTOML_HOME"] == str(setting.resolve())
        assert child["BENTOML_DO_NOT_TRACK"] == "true"
    finally:
        stop_server(proc)

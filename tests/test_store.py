"""The model store through BENTOML_HOME, as `make train` and `bentoml serve` use it: a fresh process, a temporary
home."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SCRIPT = """
import json
from mlkit.market.lifecycle import train_default, model_name
from mlkit.store import load_model, list_models, store_home
first = train_default()
second = train_default()                 # same bundled data and recipe: nothing retrained
model, card, tag = load_model(model_name("BTC-USD"))
_, gcard, _ = load_model(first["^GSPC"])
_, gprod, gtag = load_model(model_name("^GSPC"))
_, bcard, _ = load_model(first["BTC-USD"])
print(json.dumps(dict(home=str(store_home()), first=first, second=second, tag=tag, n_models=len(list_models()),
                      stages=list_models().stage.tolist(), n_train=card["n_train"], symbol=card["extra"]["symbol"],
                      cards={"BTC-USD": bcard, "^GSPC": gcard}, gspc_production=gprod, gspc_tag=gtag)))
"""


def _env(tmp_path, **kw):
    return dict(os.environ, BENTOML_HOME=str(tmp_path / "bentoml"), MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"), **kw)


def test_train_default_into_bentoml_home(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, env=_env(tmp_path),
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["home"] == str((tmp_path / "bentoml").resolve())            # BENTOML_HOME set beforehand wins
    assert sorted(out["first"]) == ["BTC-USD", "^GSPC"] and out["second"] == out["first"]
    # a first model is promoted only if its walk-forward accuracy beats the majority baseline; otherwise the baseline is
    beats = {s: c["metrics"]["accuracy"] > c["metrics"]["baseline_accuracy"] for s, c in out["cards"].items()}
    assert {s: c["extra"]["beats_baseline"] for s, c in out["cards"].items()} == beats
    assert out["tag"].startswith("market-btc-usd:") and (out["tag"] == out["first"]["BTC-USD"]) == beats["BTC-USD"]
    assert out["n_models"] == 2 + (not beats["BTC-USD"]) + (not beats["^GSPC"])
    assert sorted(out["stages"]) == ["candidate"] * (out["n_models"] - 2) + ["production"] * 2
    assert (out["n_train"], out["symbol"]) == (365, "BTC-USD")
    reg = json.loads((tmp_path / "bentoml" / "mlkit_registry.json").read_text())
    assert reg["models"]["market-gspc"]["production"] == out["gspc_tag"]
    if beats["^GSPC"]: assert out["gspc_tag"] == out["first"]["^GSPC"]
    else:
        g = out["gspc_production"]
        assert (g["model"], g["extra"]["role"], g["extra"]["baseline_for"]) == ("majority", "baseline",
                                                                                out["first"]["^GSPC"])
        assert "does not beat it" in g["extra"]["warning"]
        assert all(level["label"] != "high" for level in g["extra"]["confidence"]["levels"])
    for c in out["cards"].values():                       # every card carries its measured confidence table
        levels = c["extra"]["confidence"]["levels"]
        assert sum(level["n"] for level in levels) == c["metrics"]["n_eval"]
        if not c["extra"]["beats_baseline"]:
            assert all(level["label"] != "high" for level in levels) and c["extra"]["warning"]
    # BentoML's own CLI sees the same models, with the card as metadata and the stage label
    r = subprocess.run([str(BIN / "bentoml"), "models", "get", out["tag"], "-o", "json"], capture_output=True,
                       text=True, env=_env(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout)
    # the label records the stage at creation; the registry says production
    assert info["labels"]["stage"] == "candidate"
    assert info["labels"]["framework"] == "mlkit" and info["metadata"]["extra"]["symbol"] == "BTC-USD"
    assert 0 <= info["metadata"]["metrics"]["accuracy"] <= 1


def test_empty_store_errors_in_a_fresh_process(tmp_path):
    code = "from mlkit.store import load_model; load_model('market-btc-usd')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env(tmp_path),
                       timeout=120)
    assert r.returncode != 0 and "DataError" in r.stderr and "is empty (run `mlkit train` first)" in r.stderr
    assert not (tmp_path / "bentoml" / "mlkit_registry.json").exists()

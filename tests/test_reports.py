"""The papermill report templates execute on small parameters and render HTML without code."""
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from mlkit.reports import render, template_parameters

TEMPLATE = ROOT / "nbs" / "reports" / "market_validation.ipynb"


def test_market_template_declares_the_issue_parameters():
    assert set(template_parameters(TEMPLATE)) == {"symbol", "start", "end", "model", "presets", "time_limit", "window",
                                                  "step", "n_simulations", "cost_bps", "horizon", "dead_band", "seed"}


def test_market_validation_report_renders(tmp_path):
    out = render(TEMPLATE, tmp_path / "mv.html", dict(symbol="BTC-USD", start="2018-06-01", end="2020-01-01",
                                                       window=120, step=60, n_simulations=10))
    html = out.read_text()
    for heading in ("Verdict", "Out-of-sample results", "Equity curve", "Monte Carlo", "leaks the future", "Provenance",
                    "buy and hold", "majority class (baseline)"):
        assert heading in html, heading
    assert len(re.findall(r"<img", html)) >= 4            # equity, folds, Monte Carlo, importance
    assert "R.study(" not in html                          # input cells hidden
    assert (tmp_path / "mv.ipynb").is_file()               # the executed notebook is kept beside it
    assert "Too good to be true?" in html and "probably leakage" not in html.lower()   # an honest study is not flagged
    sha = re.search(r"prices_sha256 \| ([0-9a-f]+) \|", (tmp_path / "mv.ipynb").read_text())
    assert sha and len(sha.group(1)) == 64                 # provenance in full, not cut by pandas' display
    for entry in ("model_params", "monte_carlo_runs", "horizon", "dead_band", "git_dirty", "rsi_14"):
        assert entry in html, entry


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ValueError, match="valid: .*'symbol'"):
        render(TEMPLATE, tmp_path / "x.html", dict(symbl="BTC-USD"))
    assert not list(tmp_path.iterdir())


def test_a_leaked_feature_makes_the_verdict_say_probably_leakage():
    "Tomorrow's direction given as a feature: the study must call the result leakage, not an edge."
    from mlkit.market.features import DEFAULT_SPECS, make_dataset
    from mlkit.market.prices import load_prices
    from mlkit.market.research import plausibility, study, verdict
    _, y = make_dataset(load_prices("BTC-USD", source="bundled"), DEFAULT_SPECS, horizon=1)
    leak = pd.DataFrame({"leak_next_day_up": y.astype(float)})
    s = study("BTC-USD", start="2018-06-01", end="2020-01-01", window=120, step=60, n_simulations=5, source="bundled",
              extra_features=leak)
    assert s.walk_forward["catboost"].metrics["accuracy"] > 0.9     # the leak works: the model reads tomorrow's label
    p = plausibility(s)
    assert p.suspicious and any("standard errors above the best constant guess" in r for r in p.reasons), p.reasons
    v = verdict(s)
    assert "Verdict: probably leakage" in v and "distinguishable from chance at" not in v
    assert "leak_next_day_up" in s.provenance["features"] and s.provenance["extra_features"] == ["leak_next_day_up"]


# --- nbval on the outputs a reader sees (issue 16) --------------------------------------------------------------------
# nbdev-test runs a notebook's checks but never looks at its saved outputs, so a table or figure on a forge can go stale
# while every test passes. nbval compares them: here on scratch copies of notebooks whose outputs are committed
# (the same on every run by construction), with execution counts restored (nbdev-clean drops them and nbval refuses
# "Unrun reference cell has outputs") and `# NBVAL_CHECK_OUTPUT` on every cell that has a saved text output (PNG is not
# compared). `#| slow` and `#| eval: false` cells are skipped, as nbdev-test skips them.
# Fast notebooks whose outputs are fixed data (no model whose figures vary by CPU):
NBVAL_NOTEBOOKS = ["00_core.ipynb", "00a_api.ipynb", "04_validation.ipynb", "06_db.ipynb", "08_stamps.ipynb",
                   "10_market_prices.ipynb", "14_market_trading.ipynb", "40d_marketplace_ledger.ipynb",
                   "64_monitor_main.ipynb", "90a_serve_theme.ipynb", "94_serve_text.ipynb"]


def _nbval_copy(src, dst) -> int:
    "Write `src` to `dst` ready for `pytest --nbval-lax`; returns the number of cells whose outputs are compared."
    nb = json.loads(src.read_text())
    n = checked = 0
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        n += 1
        s = "".join(c["source"])
        c["execution_count"] = n
        for o in c["outputs"]:
            if o["output_type"] == "execute_result": o["execution_count"] = n
        if re.search(r"^#\|\s*(slow|eval:\s*false)", s, re.M): s = "# NBVAL_SKIP\n" + s
        elif any(o["output_type"] == "stream" or "text/plain" in o.get("data", {}) for o in c["outputs"]):
            s = "# NBVAL_CHECK_OUTPUT\n" + s; checked += 1
        c["source"] = s.splitlines(keepends=True)
    dst.write_text(json.dumps(nb))
    return checked


@pytest.mark.parametrize("name", NBVAL_NOTEBOOKS)
def test_saved_outputs_match_a_fresh_run(name, tmp_path):
    dst = tmp_path / name
    assert _nbval_copy(ROOT / "nbs" / name, dst) >= 1           # the notebook keeps outputs worth comparing
    env = {**os.environ, "MLKIT_LOGGING_LEVEL": "WARNING", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                        "-q", "--rootdir", str(tmp_path), str(dst)], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert re.search(r"\d+ passed", r.stdout), r.stdout[-2000:]

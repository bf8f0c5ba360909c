"""The papermill report templates execute on small parameters and render HTML without code."""
import re

import pytest

from conftest import ROOT
from mlkit.reports import render, template_parameters

TEMPLATE = ROOT / "nbs" / "reports" / "market_validation.ipynb"


def test_market_template_declares_the_issue_parameters():
    assert set(template_parameters(TEMPLATE)) == {"symbol", "start", "end", "model", "presets", "time_limit", "window",
                                                  "step", "n_simulations", "cost_bps", "seed"}


def test_market_validation_report_renders(tmp_path):
    out = render(TEMPLATE, tmp_path / "mv.html", dict(symbol="BTC-USD", start="2018-06-01", end="2020-01-01", window=120,
                                                       step=60, n_simulations=10))
    html = out.read_text()
    for heading in ("Verdict", "Out-of-sample results", "Equity curve", "Monte Carlo", "leaks the future", "Provenance",
                    "buy and hold", "majority class (baseline)"):
        assert heading in html, heading
    assert len(re.findall(r"<img", html)) >= 4            # equity, folds, Monte Carlo, importance
    assert "R.study(" not in html                          # input cells hidden
    assert (tmp_path / "mv.ipynb").is_file()               # the executed notebook is kept beside it


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ValueError, match="valid: .*'symbol'"):
        render(TEMPLATE, tmp_path / "x.html", dict(symbl="BTC-USD"))
    assert not list(tmp_path.iterdir())

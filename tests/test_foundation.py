"""Foundation checks from the outside: the command line, settings overrides, logs, data sets and docs."""
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from conftest import ROOT
from mlkit import datasets
from mlkit.data import load_table


def test_data_command_prints_every_dataset(run_cli, tmp_path):
    r = run_cli("data")
    assert r.returncode == 0, r.stderr
    names = datasets.names()   # every bundled file is listed, and the command prints each
    assert len(names) >= 8 and sorted(names) == sorted(p.stem for p in datasets.DATA_DIR.glob("*.parquet")), names
    for name in names:
        assert name in r.stdout
    # the JSON log went where the environment override said, one object per line
    lines = (tmp_path / "logs" / "mlkit.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    done = {r["dataset"] for r in recs if r["message"].startswith("data pipeline")}
    assert done == set(datasets.names())


def test_data_command_rejects_unknown_dataset(run_cli):
    r = run_cli("data", "nope")
    assert r.returncode == 2
    assert "unknown data set 'nope'" in r.stderr and "btc_usd_daily" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", datasets.names())
def test_dataset_offline_and_hashed(name):
    i = datasets.info(name)
    assert datasets.sha256_file(datasets.DATA_DIR / i.file) == i.sha256
    df = datasets.load(name, validate=True)
    assert (len(df), list(df.columns)) == (i.rows, i.columns)
    assert i.source and i.licence and i.description


def test_dataset_tampered_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "data"; fake.mkdir()
    for f in datasets.DATA_DIR.iterdir(): (fake / f.name).write_bytes(f.read_bytes())
    df = pd.read_parquet(fake / "diabetes.parquet"); df.iloc[0, 0] += 1; df.to_parquet(fake / "diabetes.parquet")
    monkeypatch.setattr(datasets, "DATA_DIR", fake)
    with pytest.raises(ValueError, match="sha256"):
        datasets.load("diabetes")


@pytest.mark.parametrize("name,kw,err,match", [
    ("missing.csv", {}, FileNotFoundError, "table file not found: .*missing.csv"),
    ("t.json", {}, ValueError, r"unknown table format: file suffix '\.json'.*valid formats: \['csv', 'excel'"),
    ("t.xlsx", {"sheet": "x"}, ValueError, "could not read .*t.xlsx as excel"),
], ids=["missing", "unknown-suffix", "not-a-workbook"])
def test_failed_loads_write_nothing(tmp_path, name, kw, err, match):
    (tmp_path / "t.xlsx").write_bytes(b"")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(err, match=match):
        load_table(tmp_path / name, **kw)
    assert sorted(tmp_path.rglob("*")) == before


def test_settings_override_from_environment(tmp_path):
    code = "from mlkit.core import settings; print(settings.getint('serving','port'), settings.database_url)"
    env = {"MLKIT_SERVING_PORT": "3999", "MLKIT_DATABASE_URL": "sqlite:///:memory:", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         check=True).stdout.split()
    assert out == ["3999", "sqlite:///:memory:"]


def test_docs_index_links_every_notebook(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    import build_docs
    monkeypatch.setattr(build_docs, "OUT", tmp_path)
    build_docs.build_site(only=["00_core"])
    index = (tmp_path / "index.html").read_text()
    pages = build_docs.pages()
    names = {p.name for p in pages}
    assert len(pages) >= 25 and {"00_core.ipynb", "04_validation.ipynb"} <= names and "index.ipynb" not in names
    for p in pages:
        assert p.relative_to(build_docs.NBS).with_suffix(".html").as_posix().replace("/", "_") in index
    core = (tmp_path / "00_core.html").read_text()
    assert "load_settings" in core and "seed_everything" in core   # show_doc output rendered


# --- the public API (nbs/00a_api.ipynb, issue 16) ---------------------------------------------------------------------
HEAVY = ("bentoml", "gradio", "autogluon", "catboost", "sklearn", "pandas", "sqlalchemy")


def test_import_mlkit_stays_light():
    "`import mlkit` imports no framework: each entry point loads its module on first use."
    code = f"import mlkit, sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_every_entry_point_resolves_to_its_function():
    "Each name in `mlkit.__all__` is the object its module defines (one fresh process imports them all)."
    code = textwrap.dedent("""
        import importlib, mlkit
        from mlkit import backtest, walk_forward, MLKit   # the issue's example
        for name in mlkit.__all__:
            module, attr = mlkit._ENTRY[name]
            mod = importlib.import_module(module)
            assert getattr(mlkit, name) is (mod if attr is None else getattr(mod, attr)), name
            assert name in dir(mlkit), name
        assert callable(backtest) and callable(walk_forward) and isinstance(MLKit, object)
        import mlkit.monitor.stream                        # the streaming package keeps its name
        assert mlkit.monitor.__name__ == "mlkit.monitor" and mlkit.monitor_market.__module__ == "mlkit.market.lifecycle"
        print(sorted(mlkit.__all__))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == str(sorted(["backtest", "walk_forward", "study", "train",
                                                            "monitor_market", "load_model", "datasets", "load_dataset",
                                                            "MLKit"]))


def test_unknown_name_lists_the_entry_points():
    import mlkit
    with pytest.raises(AttributeError,
                       match=r"module 'mlkit' has no attribute 'backtset'; its entry points are \['backtest'"):
        getattr(mlkit, "backtset")  # noqa: B009  (the attribute access is what is tested)
    from mlkit import store   # a submodule that is not an entry point still imports as a submodule
    assert store.__name__ == "mlkit.store"

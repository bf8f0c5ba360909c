# mlkit: `make run` and `make test` each set everything up on a fresh clone (Python 3.11, make, package registries).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
UV_VERSION := 0.13.9
export BENTOML_DO_NOT_TRACK := true
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export JUPYTER_PLATFORM_DIRS := 1
export PYTHONHASHSEED := 0

.PHONY: bento serve demo train install run test test-all lint export readme docs reports serve demo bench clean lock

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip sync -q --compile-bytecode requirements.lock  # bytecode now: imports halve where PYTHONDONTWRITEBYTECODE is set
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --no-deps -e .
	@touch $@

install: $(VENV)/.installed  ## .venv with the locked packages and mlkit (editable)

CHROMIUM := /usr/bin/chromium
$(CHROMIUM):  ## Debian's chromium for the browser tests (Playwright drives it; no browser download)
	@echo "== the browser tests need Debian's chromium, which is missing: installing it with apt-get (about 150 system packages, a few minutes)"
	@if [ "$$(id -u)" != 0 ]; then echo "not root: run 'sudo apt-get install chromium' yourself, then make test again"; exit 1; fi
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

lock:  ## re-resolve requirements.lock from pyproject.toml (maintainers)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

run: install  ## the main job: data pipeline summary, train every domain (skips stored models), then serve the bento (Ctrl-C stops)
	@$(PY) -m compileall -q mlkit  # mlkit's own bytecode (packages got theirs at install)
	@echo "== $$(date +%T) data pipeline summary"; $(BIN)/mlkit data --reuse
	@echo "== $$(date +%T) training the default models of every domain (seconds when they are already stored)"; $(PY) -m mlkit.serve.train --reuse
	@echo "== $$(date +%T) serving (the rendered reports are in reports/; 'make reports' renders them again)"; $(BIN)/mlkit serve

train: install  ## train the default models of every domain into the BentoML model store (idempotent; data/bentoml)
	$(PY) -m mlkit.serve.train

export: install  ## notebooks -> mlkit/, clean notebooks, README from nbs/index.ipynb
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(PY) tools/build_docs.py --readme

readme: install
	$(PY) tools/build_docs.py --readme

lint: install
	$(BIN)/ruff check .

test: install $(CHROMIUM)  ## every check the CI runs; fails on export/clean/README drift, notebook or pytest failures, ruff errors
	@$(PY) -m compileall -q mlkit
	$(BIN)/ruff check .
	tools/check_notebooks.sh
	$(PY) tools/build_docs.py --check-readme
	$(PY) tools/nbtest.py
	$(BIN)/pytest -m "not slow" -q

test-all: install $(CHROMIUM)  ## the same with the slow notebook cells and pytest marks
	$(BIN)/ruff check .
	tools/check_notebooks.sh
	$(PY) tools/nbtest.py --flags slow
	$(BIN)/pytest -q

docs: install  ## _docs/index.html and a page per notebook, offline (nbconvert; quarto is not available here)
	$(PY) tools/build_docs.py

reports: install  ## render the papermill report templates in nbs/reports/ into reports/*.html
	$(BIN)/mlkit reports

serve: train  ## the BentoML service on settings' host and port (127.0.0.1:3000), the demo at /ui/
	$(BIN)/mlkit serve

demo: train  ## the Gradio demo alone on settings' host and demo_port (127.0.0.1:7860)
	$(PY) -m mlkit.serve.market_demo

bento: train  ## build the self-contained bento (every served model packed inside; offline, from requirements.lock)
	$(PY) -m mlkit.serve.bento

bench: install  ## print speed figures (never asserted in tests)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:  ## remove generated artefacts (not the venv: `rm -rf .venv` for that)
	rm -rf _docs logs .pytest_cache .ruff_cache .hypothesis build dist *.egg-info reports/*.ipynb
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

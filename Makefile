# The course's commands. `make lab` to learn, `make test` to check everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Jupyter's config, data and runtime folders stay inside the project.
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR := $(CURDIR)/.jupyter/ipython

$(shell mkdir -p .jupyter/ipython)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

.PHONY: install lab test test-browser progress lessons solutions bench clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(INSTALLED)

install: $(INSTALLED)

lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" lessons/00_welcome.ipynb $(ALLOW_ROOT)

test: install
	$(PY) -m helpers.build --check
	$(PY) -m pytest tests solutions lessons $(NBVAL) --ignore=tests/browser

test-browser: install
	@command -v chromium >/dev/null || { \
	  echo "make test-browser needs Chromium at /usr/bin/chromium."; \
	  echo "On Debian or Ubuntu: sudo apt-get install chromium"; exit 1; }
	$(PY) -m pytest tests/browser

# Which exercises in your own lessons/ are solved (runs them headless; changes nothing).
progress: install
	@$(PY) -m helpers.progress_report

lessons: install
	$(PY) -m helpers.build

solutions: install
	$(PY) -m helpers.build --execute

bench: install
	$(PY) benchmarks/foundation.py $(BENCH_ARGS)

clean:
	rm -rf .proto_cache .jupyter artifacts

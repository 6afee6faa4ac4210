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

.PHONY: install lab test test-browser test-hub progress lessons solutions lock bench clean

LOCK := requirements.lock
UV_VERSION := 0.13.8
# `make install INSTALLER=pip` skips uv (uv is the default: same lock, ten times faster).
INSTALLER ?= uv
PIP := $(PY) -m pip --quiet --disable-pip-version-check

# Everything comes from the lock (exact versions and hashes), then this project (editable).
# uv is brought into the venv by pip; where it cannot be had, pip installs the lock itself.
$(INSTALLED): $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if [ "$(INSTALLER)" = uv ] && $(PIP) install uv==$(UV_VERSION); then \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --require-hashes -r $(LOCK) && \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --no-build-isolation -e . ; \
	else \
	  $(PIP) install --require-hashes -r $(LOCK) && \
	  $(PIP) install --no-deps --no-build-isolation -e . ; \
	fi
	touch $(INSTALLED)

install: $(INSTALLED)

lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" lessons/00_welcome.ipynb $(ALLOW_ROOT)

test: install
	$(PY) -m helpers.build --check
	$(PY) -m pytest tests solutions lessons $(NBVAL) --ignore=tests/browser --ignore=tests/hub

test-browser: install
	@command -v chromium >/dev/null || { \
	  echo "make test-browser needs Chromium at /usr/bin/chromium."; \
	  echo "On Debian or Ubuntu: sudo apt-get install chromium"; exit 1; }
	$(PY) -m pytest tests/browser

# Which exercises in your own lessons/ are solved (runs them headless; changes nothing).
progress: install
	@$(PY) -m helpers.progress_report

# A real JupyterHub on 127.0.0.1 with three learners running lessons at once (tests/hub).
test-hub: install
	cd tests/hub && npm ci --silent --no-audit --no-fund
	PATH="$(CURDIR)/tests/hub/node_modules/.bin:$$PATH" $(PY) -m pytest -s tests/hub

lessons: install
	$(PY) -m helpers.build

solutions: install
	$(PY) -m helpers.build --execute

# Resolve pyproject.toml's pins, with every transitive package, into the lock (all platforms).
lock:
	uv --version >/dev/null 2>&1 || { echo "make lock needs uv: make install first, then PATH=.venv/bin:\$$PATH make lock"; exit 1; }
	uv pip compile pyproject.toml --all-extras --universal --generate-hashes \
	  --python-version 3.11 --quiet -o $(LOCK)

bench: install
	$(PY) benchmarks/foundation.py $(BENCH_ARGS)
	$(PY) benchmarks/wiretap.py

clean:
	rm -rf .proto_cache .jupyter artifacts

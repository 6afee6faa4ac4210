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

.PHONY: install lab test test-browser test-hub progress lessons solutions lock bench mutants nbgrader clean

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

# lessons/ is what the builder makes, then the whole suite: pyproject.toml's [tool.pytest.ini_options]
# and conftest.py make a bare `pytest --nbval` run it (6 workers, each notebook executed once).
test: install
	$(PY) -m helpers.build --check
	$(VENV)/bin/pytest --nbval

# One JupyterLab for the whole file, so no workers (-n 0).
test-browser: install
	@command -v chromium >/dev/null || { \
	  echo "make test-browser needs Chromium at /usr/bin/chromium."; \
	  echo "On Debian or Ubuntu: sudo apt-get install chromium"; exit 1; }
	$(VENV)/bin/pytest -n 0 tests/browser

# Which exercises in your own lessons/ are solved, from what your checks recorded (instant;
# changes nothing). `make progress RERUN=1` runs your saved lessons headless instead (a minute).
progress: install
	@$(PY) -m helpers.progress_report $(if $(RERUN),--rerun,)

# A real JupyterHub on 127.0.0.1 with three learners running lessons at once (tests/hub).
test-hub: install
	cd tests/hub && npm ci --silent --no-audit --no-fund
	PATH="$(CURDIR)/tests/hub/node_modules/.bin:$$PATH" $(VENV)/bin/pytest -n 0 --timeout 1800 -s tests/hub
	COURSE_TEST_NBGRADER=1 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -n 0 --timeout 1800 \
	  tests/test_nbgrader.py -k autogrades

# An nbgrader course made from the solutions, for teachers who grade a class (teacher/README.md).
NBGRADER_DIR ?= artifacts/nbgrader
nbgrader: install
	$(PY) -m helpers.build --nbgrader $(NBGRADER_DIR) $(LESSONS_ARGS)

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

# Mutation testing: each check must notice small changes to its official solution (tests/mutants.py).
# Fails if any exercise is below the floor. MUTANTS_ARGS="--lesson 03" or "--exercise 3.2" narrows a run.
# Three notebooks at a time: their checks mostly wait on servers and deadlines, not on the CPU.
MUTANTS_ARGS ?= --workers 3
mutants: install
	$(PY) tests/mutants.py $(MUTANTS_ARGS)

# .jupyter/ is emptied but for the committed settings (labconfig/).
clean:
	rm -rf .proto_cache artifacts
	git clean -fdXq .jupyter

# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv, install, run the whole pipeline (dvc repro) on the embedded data
#   make test    create .venv, install, run the test suite (CI; tests marked slow left out)
#   make test-slow   the slow tests alone (each over ~100 s; see README)
#   make study   DepthART vs VAR-TF over seeds 0 1 2 (expected and sample decoding), the
#                image-route ablations at seeds 0 1 and a train.steps trend at seed 0, as DVC
#                experiments; the answer goes to the top of docs/learning.md (~2 h on 2 cores);
#                STUDY_ARGS passes options, e.g. STUDY_ARGS="--set train.steps=2000"
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install repro test test-slow lint format study

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

study: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m bench.learning.study $(STUDY_ARGS)

# Two pytest-xdist workers, one test module each at a time (module fixtures are built once):
# the tests run single-threaded, so the second core was idle but for subprocesses (9.0 min
# instead of 12.8 as fp32, docs/performance.md). Each worker takes its share of the cores
# (tests/conftest.py). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadscope

test-slow: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

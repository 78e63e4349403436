# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv inside the checkout on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
VENV_STAMP := $(VENV)/.venv-stamp
# compat: a plain path in a .pth file, which mypy in a project that depends on this checkout can follow
# (the default editable mode installs an import hook that mypy cannot see). PYTHONWARNINGS quiets the
# boxed notices setuptools prints about editable modes, which ask nothing of the user.
INSTALL := PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --config-settings editable_mode=compat

.PHONY: demo test lint stress bench bench-quick clean

$(VENV_STAMP):
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "jsonl-sessions needs Python 3.11 or newer; try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV); on Debian or Ubuntu: sudo apt install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	@touch $(VENV_STAMP)

# What the demo needs: the package and its runtime dependencies, no test or lint tools.
$(RUNTIME_STAMP): pyproject.toml $(VENV_STAMP)
	$(INSTALL) -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml $(VENV_STAMP)
	$(INSTALL) -e '.[dev]'
	@touch $(STAMP) $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/sessions chat

# -n auto: one worker per core (pytest-xdist); a run that collects no test fails (pytest exits 5).
test: $(STAMP)
	$(PY) -m pytest -q -n auto -m "not stress and not syncthing"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The long reliability runs (docs/RELIABILITY.md); -s shows the figures each suite prints.
stress: $(STAMP)
	$(PY) -m pytest -q -s -m stress --durations=0

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Benchmarks against the peers (docs/BENCHMARKS.md). `bench` needs the optional
# `bench` extra (eventsourcing, pyinstrument); `bench-quick` is a smoke run whose
# timings are not meant to be judged.
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(INSTALL) -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --json benchmarks/results/latest.json

bench-quick: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --quick --json benchmarks/results/quick.json

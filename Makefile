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

.PHONY: demo test test-slow lint stress bench bench-quick clean

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

# The suite starts some hundreds of Python processes (the `sessions` command, crash and concurrency workers).
# Their compiled bytecode is kept in .venv/pycache, also where PYTHONDONTWRITEBYTECODE is set, so that each
# process does not compile the package and pytest's rewritten test modules again (a quarter of the run).
PYTEST := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX="$(CURDIR)/$(VENV)/pycache" $(PY) -m pytest

# -n auto: one worker per core (pytest-xdist); a run that collects no test fails (pytest exits 5).
# `make test` leaves out the tests marked slow (end-to-end runs of many processes, about a minute more) and says
# so at the end; `make test-slow` runs them, and CI runs both.
test: $(STAMP)
	@$(PYTEST) -q -n auto -m "not stress and not syncthing and not slow"; status=$$?; \
		echo "Left out: the slow end-to-end tests (pytest -m slow); run them with: make test-slow"; exit $$status

# --dist loadfile: the benchmark harness runs once per worker that gets one of its tests, so its module stays whole.
test-slow: $(STAMP)
	$(PYTEST) -q -n auto --dist loadfile -m "slow and not stress and not syncthing"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The long reliability runs (docs/RELIABILITY.md); -s shows the figures each suite prints.
stress: $(STAMP)
	$(PYTEST) -q -s -m stress --durations=0

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

# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv inside the checkout on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint stress bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "jsonl-sessions needs Python 3.11 or newer; try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV); on Debian or Ubuntu: sudo apt install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sessions chat

test: $(STAMP)
	$(PY) -m pytest -q -m "not stress and not syncthing"

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
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --json benchmarks/results/latest.json

bench-quick: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --quick --json benchmarks/results/quick.json

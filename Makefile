# Every target builds the virtualenv it needs first, so a fresh clone needs only `make <target>`.
# The FunctionGraph runtime is CPython 3.10: use it when this machine has it, else the default python3.
PYTHON ?= $(shell for p in python3.10 python3; do $$p -c 'import sys' >/dev/null 2>&1 && echo $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test test-fast lint demo bench package clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

## The whole suite: unit tests, then the integration tests on the local cloud.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## Unit tests only (no servers).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

## FunctionGraph code packages: build/collector.zip and build/archiver.zip (and the same trees unpacked, for
## Serverless Devs), with the dependencies for the runtime (CPython 3.10, Linux x86_64). README, "Deployment".
package: $(STAMP)
	$(BIN)/python tools/package.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache

## The whole flow on the local cloud (SeaweedFS + DCS emulator), with the functions' real handlers.
demo: $(STAMP)
	$(BIN)/python tools/demo.py

## Benchmarks on the local cloud: one table on stdout (README, "Benchmarks"). BENCH_RUNS=n runs per figure
## (default 3), BENCH_QUICK=1 for a small, fast variant, BENCH_ONLY=copy,collector,repeat,coldstart,smallfiles,memory
## (or digest) for a subset.
bench: $(STAMP)
	@$(BIN)/python -m tests.bench.run

# pgmi developer entry points. `make deps` once on a new machine (or run .ci/run), then `make test`.
PYTHON ?= python3

.PHONY: all build test lint demo bench bench-quick deps check-deps clean reliability

all: lint test

## deps: install the pinned run-time and development dependencies into the current Python
deps:
	$(PYTHON) -m pip install -r requirements.txt -r requirements-dev.txt

# Fail early with the fix instead of a wall of ImportErrors from pytest.
check-deps:
	@$(PYTHON) -c "import pg8000, yaml, pytest" 2>/dev/null || { \
	  echo "missing Python dependencies: run 'make deps' ($(PYTHON) -m pip install -r requirements.txt -r requirements-dev.txt)" >&2; \
	  exit 1; }

## build: the single-file zipapp dist/pgmi (pure Python, runs on CPython >= 3.11)
build:
	$(PYTHON) build.py

## test: the whole suite against a real PostgreSQL (throwaway cluster, PGMI_TEST_DSN or docker)
test: check-deps
	$(PYTHON) -m pytest -q tests

## reliability: the full reliability suite (fault trials, concurrency, >= 100k hostile inputs); prints the figures.
## The fast slice of the same tests runs in `make test`. Replay a run with PGMI_RELIABILITY_SEED=<printed seed>.
reliability: check-deps
	PGMI_RELIABILITY=full $(PYTHON) -m pytest -q -p no:cacheprovider tests/reliability

lint:
	$(PYTHON) -m ruff check .

## demo: deploy examples/demo into a throwaway cluster
demo:
	$(PYTHON) pgmi.py deploy examples/demo --ephemeral

bench:
	$(PYTHON) bench/run.py

bench-quick:
	$(PYTHON) bench/run.py --quick

clean:
	rm -rf dist build *.egg-info .pytest_cache .ruff_cache bench/out bench/work
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	-$(PYTHON) -c "from pgmilib.cluster import clear_templates; clear_templates()"

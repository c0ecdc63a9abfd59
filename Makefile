# Two commands from a fresh machine:
#   make run   - virtualenv, install, migrate, demo data, serve on http://127.0.0.1:8000
#   make test  - virtualenv, dev install, linters, the whole suite (SQLite, and
#                PostgreSQL when PULSE_TEST_POSTGRES_URL is set)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in emails and the ones make run prints point at where make run serves, unless
# PULSE_PUBLIC_BASE_URL is set in the environment.
PULSE_PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test lint format bench migrate demo clean

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Pulse needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.python-ok
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The embedded default: SQLite file pulse.db, worker in-process, emails as .eml files in
# mail/. A secret key for personal links is generated into .env on the first run.
run: export PULSE_PUBLIC_BASE_URL := $(PULSE_PUBLIC_BASE_URL)
run: $(VENV)/.installed
	@test -f .env && grep -q '^PULSE_SECRET_KEY=' .env || { \
	  echo "PULSE_SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env; \
	  echo "pulse: generated a development secret key in .env"; }
	$(BIN)/pulse migrate
	@$(BIN)/pulse demo --if-empty --key-file .pulse-admin-key | head -n -1
	@echo
	@echo "Admin key: $$(cat .pulse-admin-key)"
	@echo "Try:       curl -H \"Authorization: Bearer $$(cat .pulse-admin-key)\" 'http://$(HOST):$(PORT)/v1/employees?limit=5'"
	@echo "API docs:  http://$(HOST):$(PORT)/docs"
	@echo
	$(BIN)/pulse serve --with-worker --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev lint
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format app tests bench
	$(BIN)/ruff check --fix app tests migrations bench

# Every benchmark runs (a missed target does not stop the others); the exit status says
# whether all of them met their targets. PostgreSQL is used when it is reachable.
bench: $(VENV)/.installed-dev
	@failed=""; for script in bench/bench_*.py; do echo "== $$script"; \
	  $(BIN)/python $$script || failed="$$failed $$script"; done; \
	  if [ -n "$$failed" ]; then echo "targets missed:$$failed"; exit 1; fi

migrate: $(VENV)/.installed
	$(BIN)/pulse migrate

demo: $(VENV)/.installed
	$(BIN)/pulse demo

clean:
	rm -rf $(VENV) pulse.db pulse.db-wal pulse.db-shm mail .pulse-admin-key .pytest_cache .mypy_cache .ruff_cache

# The two front-door commands are `make run` and `make test`; the rest are helpers.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= auto
PYTEST_DIST ?= loadfile
STAMP := $(VENV)/.installed
UV ?= uv==0.13.8

.PHONY: run test setup migrate lint typecheck importlint check-deploy bench clean

$(STAMP): requirements/base.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs the same pins in seconds; pip (minutes on a fresh machine) is the fallback.
	$(PY) -m pip install --quiet --disable-pip-version-check $(UV) \
		&& $(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements/dev.txt \
		|| $(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

setup: $(STAMP)

migrate: setup
	$(PY) manage.py migrate --noinput

## Set everything up, seed the demo data (idempotent) and serve the suite on http://$(HOST):$(PORT) (SQLite, local
## memory cache, eager tasks).
run: migrate
	$(PY) manage.py seed_demo --site-url http://$(HOST):$(PORT)
	$(PY) -m uvicorn marketplace.asgi:application --host $(HOST) --port $(PORT) --loop uvloop --http httptools \
		--no-access-log --lifespan off --timeout-keep-alive 75

## Set everything up and run the whole test suite (the infra package on its own minimal settings, then the rest).
test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST) --ds=tests.llm_infra_django.settings tests/llm_infra_django
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST) --ignore=tests/llm_infra_django tests

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

importlint: setup
	$(VENV)/bin/lint-imports

typecheck: setup
	$(PY) -m mypy

check-deploy: setup
	SECRET_KEY=$${SECRET_KEY:-$$(openssl rand -hex 40)} ALLOWED_HOSTS=$${ALLOWED_HOSTS:-marketplace.example.com} \
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(PY) manage.py check --deploy --fail-level WARNING --settings=settings.prod

clean:
	rm -rf $(VENV) staticfiles build dist *.egg-info

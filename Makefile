# The two commands: `make run` (dashboard + worker, demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
UV := var/bootstrap/bin/uv
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run worker beat test test-fast lint fix bench bench-recovery bench-pages check-migrations check-deploy

# Bytecode is written at install (these machines set PYTHONDONTWRITEBYTECODE, so imports never
# write it): the dependencies once, by uv; our own sources on each install, cheap when current.
install: $(VENV)/.installed
	@$(PY) -m compileall -q -j 0 certification config demo evidence partners manage.py > /dev/null

# uv is installed into its own small virtualenv so that only Python and make are needed.
$(UV):
	@mkdir -p var
	$(PYTHON) -m venv var/bootstrap
	var/bootstrap/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

SANDBOX_PORT ?= 8001
SFTP_PORT ?= 8022
EDI_PORT ?= 8023

# The dashboard, a Celery worker, Celery beat and the demo partner sandbox, with demo data and
# one finished run of the demo suite to look at (made once: a restart adds none). demo/run.py
# supervises them: "Dashboard on ..." once the server answers, Ctrl-C or SIGTERM stops each
# process once. DEBUG is off, so pages are what a partner user sees; logs go to var/*.log.
run: install
	$(PY) -m demo.run --host $(HOST) --port $(PORT) --sandbox-port $(SANDBOX_PORT) --sftp-port $(SFTP_PORT) --edi-port $(EDI_PORT)

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule=var/celerybeat-schedule

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fix: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	@for f in bench/engine.py bench/whole_process.py bench/fidelity.py bench/runs.py \
	  bench/transport_overhead.py bench/inbox.py; do \
	  echo "== $$f"; $(PY) $$f || exit 1; done

# 20 SIGKILLs of a worker at random points of a run, default settings (about 5 minutes).
bench-recovery: install
	$(PY) bench/recovery.py

# Page server time and queries at volume (seeds 500 partners, 200k steps into DATABASE_URL's
# PostgreSQL on first use; see docs/volume.md).
bench-pages: install
	$(PY) bench/pages.py

check-migrations: install
	$(PY) manage.py makemigrations --check --dry-run

check-deploy: install
	export APP_ENV=production SECRET_KEY=$$($(PY) -c 'import secrets;print(secrets.token_urlsafe(50))') \
	  SECRETS_ENCRYPTION_KEYS=k1:$$($(PY) -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())') \
	  EVIDENCE_SIGNING_KEY=$$($(PY) -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())') \
	  ALLOWED_HOSTS=certdash.example.com PUBLIC_BASE_URL=https://certdash.example.com DATABASE_URL=$${DATABASE_URL:-sqlite:///var/deploy-check.sqlite3} \
	  CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}; \
	  $(PY) manage.py check --deploy --fail-level WARNING && \
	  $(PY) manage.py signing_key --fingerprint

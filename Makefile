# The README's two commands: `make run` (dashboard on the embedded database with demo data)
# and `make test`. Each creates the virtual environment and installs what it needs, from the
# lock file: every package pinned with its hash, so every install gets the same files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK_OPTIONS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: run test install install-prod lock audit clean-venv

$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Production, without the image (README, "Running in production"): a virtualenv with the
# packages of requirements.lock only (no test tools), the project importable from this
# checkout, as deploy/systemd/*.service expect it in /srv/webhook-monitor.
PROD_VENV ?= .venv
install-prod:
	$(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements.lock
	$(PROD_VENV)/bin/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), 'stripe-webhook-monitor.pth').write_text('$(CURDIR)\\n')"

# Migrates the embedded database, loads fresh demo data, starts the local Stripe server and
# the dashboard (scripts/run_demo.py --help for options, e.g. make run DEMO_ARGS=--keep-data).
run: $(STAMP)
	$(PY) scripts/run_demo.py $(DEMO_ARGS)

# One test process per processor (pytest-xdist), each with its own throwaway database: most
# tests wait on servers and subprocesses, so two processes on two cores take half the time
# (docs/performance.md, "Test suite"). TEST_ARGS="-n 0" runs the suite in one process.
test: $(STAMP)
	$(PY) -m pytest -n auto $(TEST_ARGS)

# After changing the dependencies in pyproject.toml: pin them again (pip-tools).
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(PY) -m piptools compile $(LOCK_OPTIONS) -o requirements.lock pyproject.toml
	$(PY) -m piptools compile $(LOCK_OPTIONS) --extra dev -o requirements-dev.lock pyproject.toml

# Known vulnerabilities in the pinned packages (pip-audit); skipped, saying so, when
# PyPI's vulnerability data cannot be reached.
audit: $(STAMP)
	$(PY) scripts/audit_dependencies.py

clean-venv:
	rm -rf $(VENV)

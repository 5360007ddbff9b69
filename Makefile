# The README's two commands: `make run` (dashboard on the embedded database with demo data)
# and `make test`. Each creates the virtual environment and installs what it needs, from the
# lock file: every package pinned with its hash, so every install gets the same files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK_OPTIONS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: run test lint install install-prod lock audit clean-venv deno-check

# The Supabase Edge Function kit (integrations/supabase) runs under Deno, which comes from the
# npm registry pinned by package-lock.json (`npm ci` puts it at node_modules/.bin/deno); the
# kit's own npm packages are pinned by integrations/supabase/deno.lock (--frozen: a change
# fails instead of rewriting the lock).
DENO        := node_modules/.bin/deno
DENO_CONFIG := integrations/supabase/deno.json
DENO_STAMP  := node_modules/.deno-installed
DENO_FILES  := integrations/supabase/functions tests/deno

$(DENO_STAMP): package.json package-lock.json integrations/supabase/deno.lock
	npm ci --no-audit --no-fund --loglevel=error
	$(DENO) install --frozen --config $(DENO_CONFIG) --entrypoint integrations/supabase/functions/stripe-webhook/index.ts tests/deno/rpc_function.ts
	touch $(DENO_STAMP)

# The Supabase CLI the export test applies migrations with, pinned by tests/supabase_cli's lock
# file. `npm install` rather than `npm ci`: the registry serves only some of the CLI's
# per-platform packages, which `npm ci`'s check of the whole lock file refuses.
SUPABASE_CLI := tests/supabase_cli/node_modules/.bin/supabase

$(SUPABASE_CLI): tests/supabase_cli/package.json tests/supabase_cli/package-lock.json
	npm install --prefix tests/supabase_cli --no-audit --no-fund --loglevel=error
	touch $(SUPABASE_CLI)

# Type-check, lint and unit-test the kit (the function itself runs in pytest's conformance suite).
deno-check: $(DENO_STAMP)
	$(DENO) check --frozen --quiet --config $(DENO_CONFIG) $(DENO_FILES)
	$(DENO) lint --quiet --config $(DENO_CONFIG) $(DENO_FILES)
	NO_COLOR=1 $(DENO) test --frozen --quiet -A --config $(DENO_CONFIG) tests/deno

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
# The Deno checks run first, so pytest's summary is the last thing printed.
test: $(STAMP) deno-check $(SUPABASE_CLI)
	$(PY) -m pytest -n auto $(TEST_ARGS)

# Ruff with the project's small rule set (pyproject.toml, [tool.ruff]): unused names, import
# order, likely bugs. CI runs it before the tests; `ruff check --fix .` repairs most findings.
lint: $(STAMP)
	$(PY) -m ruff check --no-cache .

# After changing the dependencies in pyproject.toml: pin them again (pip-tools).
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(PY) -m piptools compile $(LOCK_OPTIONS) -o requirements.lock pyproject.toml
	$(PY) -m piptools compile $(LOCK_OPTIONS) --extra dev -o requirements-dev.lock pyproject.toml

# Known vulnerabilities in the pinned packages (pip-audit); skipped, saying so, when
# PyPI's vulnerability data cannot be reached.
audit: $(STAMP)
	$(PY) scripts/audit_dependencies.py $(AUDIT_ARGS)

clean-venv:
	rm -rf $(VENV)

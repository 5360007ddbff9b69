# The README's two commands: `make run` (dashboard on the embedded database with demo data)
# and `make test`. Each creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Migrates the embedded database, loads fresh demo data, starts the local Stripe server and
# the dashboard (scripts/run_demo.py --help for options, e.g. make run DEMO_ARGS=--keep-data).
run: $(STAMP)
	$(PY) scripts/run_demo.py $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)

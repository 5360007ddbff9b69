# The README's two commands: `make run` (dashboard on the embedded database with demo data)
# and `make test`. Each creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m jobs migrate
	MONITOR_AUTH=none $(PY) -m streamlit run dashboard/app.py \
		--server.headless true --server.address 127.0.0.1 --browser.gatherUsageStats false

test: $(STAMP)
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)

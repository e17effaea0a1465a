# Two commands do all the set-up: `make demo` and `make test` (both create .venv first).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv demo ui stop test lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) scripts/demo.py

# The Airflow UI on the demo's results (runs the demo first if needed); prints address, user, password.
ui: venv
	$(PY) scripts/ui.py start

# Stops the UI and the demo's embedded PostgreSQL.
stop:
	$(PY) scripts/ui.py stop

test: venv
	$(PY) -m pytest -p no:cacheprovider
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: venv
	$(PY) -m bench

clean: stop
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache

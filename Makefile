# Both targets create ./.venv on first use, so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

# constraints.txt is the tested dependency set: a fresh install next month resolves the same one
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# loads the sandbox into fullstory_demo.duckdb, then builds the analytics models (docs/analytics.md)
demo: $(STAMP)
	$(BIN)/fullstory-pipeline demo
	$(BIN)/fullstory-pipeline models --pipeline-name fullstory_demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) fullstory_demo.duckdb

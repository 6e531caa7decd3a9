# Both targets create ./.venv on first use, so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Airflow gets its own venv (its pins clash with the dev tools'); tests/test_airflow.py runs the
# example DAG in it. Rebuilt only when its lock file changes (the checkout is installed editable).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# dbt with the BigQuery and Snowflake adapters, whose pins clash with constraints.txt too;
# tests/test_dbt_warehouses.py compiles the analytics models with them, offline. Only dbt and the
# adapters (the project is compiled from its directory, not installed); rebuilt when the lock changes.
DBT_WAREHOUSES_VENV ?= .venv-dbt-warehouses
DBT_WAREHOUSES_STAMP := $(DBT_WAREHOUSES_VENV)/.installed

.PHONY: demo test lint clean airflow-venv dbt-warehouses-venv

# constraints.txt is the tested dependency set: a fresh install next month resolves the same one
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(AIRFLOW_STAMP): .ci/airflow-requirements.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r .ci/airflow-requirements.txt
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(AIRFLOW_VENV)/bin/python -m pip check
	touch $(AIRFLOW_STAMP)

airflow-venv: $(AIRFLOW_STAMP)

$(DBT_WAREHOUSES_STAMP): .ci/dbt-warehouses-requirements.txt
	rm -rf $(DBT_WAREHOUSES_VENV)
	$(PYTHON) -m venv $(DBT_WAREHOUSES_VENV)
	$(DBT_WAREHOUSES_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DBT_WAREHOUSES_VENV)/bin/python -m pip install --quiet -r .ci/dbt-warehouses-requirements.txt
	$(DBT_WAREHOUSES_VENV)/bin/python -m pip check
	touch $(DBT_WAREHOUSES_STAMP)

dbt-warehouses-venv: $(DBT_WAREHOUSES_STAMP)

# loads the sandbox into fullstory_demo.duckdb, then builds the analytics models (docs/analytics.md)
demo: $(STAMP)
	$(BIN)/fullstory-pipeline demo
	$(BIN)/fullstory-pipeline models --pipeline-name fullstory_demo

test: $(STAMP) $(AIRFLOW_STAMP) $(DBT_WAREHOUSES_STAMP)
	FULLSTORY_AIRFLOW_VENV=$(abspath $(AIRFLOW_VENV)) \
	FULLSTORY_DBT_WAREHOUSES_VENV=$(abspath $(DBT_WAREHOUSES_VENV)) \
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(DBT_WAREHOUSES_VENV) fullstory_demo.duckdb

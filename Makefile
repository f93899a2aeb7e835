# midl: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=
.DEFAULT_GOAL := help
.PHONY: help install train test lint clean

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install midl (editable) with its dev tools; no-op when up to date

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

train: install ## Run the default job (MID-L on the embedded digits data); ARGS="..." adds Hydra overrides
	$(PY) -m midl.train $(ARGS)

test: install ## Run the test suite (tests needing real data use MIDL_DATA_DIR or ../shared/data, else skip)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check .

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs .cache .pytest_cache .ruff_cache

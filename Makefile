# The two commands a newcomer needs (see README.md):
#   make run    install into .venv and start the service on its embedded defaults
#   make test   install into .venv and run linters, type checks and the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make run` starts in single-user mode on the loopback bind unless you say otherwise
# (ATELIER_AUTH=apikey make run). Only the service gets this default, never the tests.
RUN_AUTH ?= $(or $(ATELIER_AUTH),disabled)
# ... and installs what it is missing (engines, the default model) in the background, unless told not to
# (ATELIER_INSTALL_MISSING=false, or ATELIER_ENGINES=external for engines of your own).
RUN_INSTALL ?= $(or $(ATELIER_INSTALL_MISSING),true)

.PHONY: run test lint

run: $(STAMP)
	ATELIER_AUTH=$(RUN_AUTH) ATELIER_INSTALL_MISSING=$(RUN_INSTALL) $(BIN)/atelier serve

test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./client -e '.[dev]'
	touch $(STAMP)

# Two commands on a fresh clone: `make run` (gateway with embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/gemini-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $@

run: $(BIN)/gemini-gateway
	$(BIN)/gemini-gateway serve

test: $(BIN)/gemini-gateway
	$(BIN)/python -m pytest

lint: $(BIN)/gemini-gateway
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy

bench: $(BIN)/gemini-gateway
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

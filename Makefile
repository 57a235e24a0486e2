# pg-mcp: `make demo` runs the pipeline on the embedded PostgreSQL, `make test` runs the tests.
# Only Python 3.11+ and make are needed: uv is installed with pip when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PGMCP  := $(BIN)/pg-mcp
STAMP  := $(VENV)/.setup-stamp

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint format fixtures sample-dbs references skill serve bench eval db-start db-stop db-status clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## install uv if missing, then the locked environment (idempotent)

$(STAMP): pyproject.toml uv.lock
	@if command -v uv >/dev/null 2>&1; then UV=uv; \
	elif $(PYTHON) -m uv --version >/dev/null 2>&1; then UV="$(PYTHON) -m uv"; \
	else $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --user --break-system-packages uv; UV="$(PYTHON) -m uv"; fi; \
	$$UV sync --locked --python $(PYTHON)
	@touch $@

demo: setup fixtures ## the main job on the embedded default: fixtures, references, validate and run a question's SQL
	$(BIN)/python scripts/demo.py

test: setup fixtures ## ruff (check and format), the import-linter layer contracts and the whole pytest suite
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

lint: setup ## ruff check and format check, import-linter contracts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

format: setup ## ruff format and fix
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

fixtures: setup ## (re)create the three fixture databases (skips ones already up to date)
	$(PGMCP) fixtures

sample-dbs: setup ## load pagila and northwind from ../shared/databases when present
	$(PGMCP) sample-dbs

references: setup fixtures ## write Markdown references for every reachable database into references/
	$(PGMCP) references --out references

skill: setup ## install the skill for Claude Code (.claude/skills is kept identical to skills/)
	rm -rf .claude/skills/pg-mcp && mkdir -p .claude/skills && cp -R skills/pg-mcp .claude/skills/pg-mcp

serve: setup ## run the MCP server over stdio
	$(PGMCP) serve

bench: setup fixtures ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python bench/run_all.py

eval: setup fixtures ## score candidate SQL or ask answers against fixtures/TEST_QUERIES.md
	$(PGMCP) eval

db-start: setup ## start the embedded PostgreSQL
	$(PGMCP) db start

db-stop: setup ## stop the embedded PostgreSQL
	$(PGMCP) db stop

db-status: setup ## is the embedded PostgreSQL running?
	$(PGMCP) db status

clean: db-stop ## stop the embedded server and remove .pg-mcp and .venv
	rm -rf .pg-mcp $(VENV)

# Everything runs from the project's own virtual environment (.venv), made by `make install`
# with a pinned uv kept in .tools/. No Python is downloaded: the machine's python3 (3.11) is used.

UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help install run test lint docs bench e2e chaos

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q uv==$(UV_VERSION)

install: $(UV) ## Create or update .venv from uv.lock (idempotent)
	UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen

run: install ## Run api, worker and recon locally (embedded servers unless DATABASE_URL/REDIS_URL)
	$(VENV)/relai run

test: install ## Run the test suite (servers in DATABASE_URL/REDIS_URL, else embedded ones)
	$(VENV)/pytest

lint: install ## ruff, formatting, mypy and the import-linter contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

docs: install ## Regenerate docs/settings.md from the settings classes
	$(VENV)/python -m tools.settings_reference > docs/settings.md.tmp
	mv docs/settings.md.tmp docs/settings.md

bench: install ## Run the benchmarks and print comparable figures
	$(VENV)/python -m bench
	$(VENV)/python -m bench.submit_path --users 100

e2e: install ## Only the end-to-end tests (real api, worker and recon processes)
	$(VENV)/pytest -m e2e tests/e2e

chaos: install ## The chaos suite at full size: 1,000 requests per scenario, one line of figures each
	RELAI_CHAOS_N=$${RELAI_CHAOS_N:-1000} $(VENV)/pytest -m chaos tests/chaos

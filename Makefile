# Everything runs from the project's own virtual environment (.venv), made by `make install`
# with a pinned uv kept in .tools/. No Python is downloaded: the machine's own is used, python3 if
# it is a supported version (3.11, 3.12 or 3.13), else the newest python3.1x on PATH; set PYTHON
# to choose another. A .venv made by another Python is made anew.

SUPPORTED := 3.11 3.12 3.13
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv/bin
ifndef PYTHON
# The interpreter itself (not a pyenv shim), so that uv and .venv name it as it is.
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; ok = "%d.%d" % sys.version_info[:2] in "$(SUPPORTED)".split(); \
	ok and print(sys.executable); sys.exit(not ok)' 2>/dev/null && break; done)
endif
export UV_PYTHON_DOWNLOADS := never
PYTHONS ?= $(SUPPORTED)
PYENV_ROOT ?= $(HOME)/.pyenv

.DEFAULT_GOAL := help
.PHONY: help install peers-env run test lint docs bench e2e browser screenshots chaos soak fuzz unit-pythons

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@test -n "$(PYTHON)" || { echo "no Python $(SUPPORTED) found (python3, python3.1x)" >&2; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install -q uv==$(UV_VERSION)

install: $(UV) ## Create or update .venv from uv.lock (idempotent)
	@test -n "$(PYTHON)" || { echo "no Python $(SUPPORTED) found (python3, python3.1x)" >&2; exit 1; }
	$(UV) sync --frozen --python $(PYTHON)

PEERS_STAMP := .venv-peers/.installed

peers-env: $(PEERS_STAMP) ## Create .venv-peers: the peer task queues of `make bench` (bench/peers/requirements.txt)

$(PEERS_STAMP): bench/peers/requirements.txt | $(UV)
	@test -n "$(PYTHON)" || { echo "no Python $(SUPPORTED) found (python3, python3.1x)" >&2; exit 1; }
	test -x .venv-peers/bin/python || $(UV) venv .venv-peers --python $(PYTHON)
	$(UV) pip install --python .venv-peers/bin/python -r bench/peers/requirements.txt
	touch $@

run: install ## Run api, worker, recon and dispatcher locally (embedded servers unless DATABASE_URL/REDIS_URL)
	$(VENV)/relai run

test: install peers-env ## Run the test suite (servers in DATABASE_URL/REDIS_URL, else embedded ones)
	$(VENV)/pytest

lint: install ## ruff, formatting, mypy and the import-linter contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

docs: install ## Regenerate docs/settings.md from the settings classes
	$(VENV)/python -m tools.settings_reference > docs/settings.md.tmp
	mv docs/settings.md.tmp docs/settings.md

bench: install peers-env ## Run the benchmarks and print comparable figures, beside the peer task queues' (bench/peers)
	$(VENV)/python -m bench
	$(VENV)/python -m bench.submit_path --users 100
	$(VENV)/python -m bench.openai_door
	$(VENV)/python -m bench.webhooks
	$(VENV)/python -m bench.scaling
	$(VENV)/python -m bench.fairness
	$(VENV)/python -m bench.peers

e2e: install ## Only the end-to-end tests (real api, worker, recon and dispatcher processes)
	$(VENV)/pytest -m e2e tests/e2e

browser: install ## Only the browser tests: the console and the admin panel in headless Chromium (apt-get install chromium)
	$(VENV)/pytest -m browser tests/browser

screenshots: install ## The browser tests, keeping their pictures of each page in docs/screenshots/
	RELAI_SCREENSHOTS=1 $(VENV)/pytest -m browser tests/browser

chaos: install ## The chaos suite at full size: 1,000 requests per scenario, one line of figures each
	RELAI_CHAOS_N=$${RELAI_CHAOS_N:-1000} $(VENV)/pytest -m chaos tests/chaos

soak: install ## The soak alone, 10 minutes: a steady load, a random process killed -9 every 15 s
	RELAI_SOAK_S=$${RELAI_SOAK_S:-600} $(VENV)/pytest -m chaos tests/chaos/test_soak.py

fuzz: install ## Schemathesis over the whole API, longer: RELAI_FUZZ_EXAMPLES (300), a new seed each run
	@seed=$${RELAI_FUZZ_SEED:-$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}; \
	echo "schemathesis seed $$seed (RELAI_FUZZ_SEED=$$seed replays this run)"; \
	RELAI_FUZZ_EXAMPLES=$${RELAI_FUZZ_EXAMPLES:-300} RELAI_FUZZ_SEED=$$seed \
		$(VENV)/pytest tests/integration/security/test_schemathesis.py

unit-pythons: $(UV) ## The unit tests on each supported Python, in its own .venv-3.1x (PYTHONS=...)
	@for v in $(PYTHONS); do \
		py=$$(for p in python$$v $$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null \
			| sort -rV); do $$p -c 'import sys; print(sys.executable)' 2>/dev/null && break; done); \
		if [ -z "$$py" ]; then \
			echo "no Python $$v here (python$$v on PATH, $(PYENV_ROOT)/versions/$$v.*)" >&2; exit 1; \
		fi; \
		echo "unit tests on $$py (.venv-$$v)"; \
		UV_PROJECT_ENVIRONMENT=.venv-$$v $(UV) sync --frozen --quiet --python $$py || exit 1; \
		.venv-$$v/bin/pytest -q tests/unit || exit 1; \
	done

# Everything a new user needs: `make demo` and `make test`. Each creates .venv and installs
# what it needs, so a fresh Debian machine with Python 3.11 is enough.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVERS := prometheus-node-exporter prometheus-alertmanager prometheus
# kubectl is not among them: Debian has no kubectl package (bookworm's kubernetes-client 1.20
# builds no kustomize Components). The tests render deploy/ with tests/kustomize_subset.py and,
# where some kubectl is installed, check that `kubectl kustomize` gives the same objects.

.PHONY: help demo test lint typecheck bench results soak servers constraints clean

# The strict editable install (below) links each module on its own, so a module added since the
# install (a pull, a merge) is missing from it until it is redone: the list of modules is part of
# what the install depends on, rewritten only when it changes.
MODULES := $(VENV)/.modules
$(shell mkdir -p $(VENV) && find deucalion -name '*.py' | LC_ALL=C sort > $(MODULES).now && \
	{ cmp -s $(MODULES).now $(MODULES) && rm $(MODULES).now || mv $(MODULES).now $(MODULES); })

$(VENV)/.installed: pyproject.toml Makefile $(MODULES)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "deucalion needs Python 3.11 or newer" or 0)'
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	@# strict: the editable install is a plain path (to links in build/) in a .pth file, as a
	@# wheel's is. setuptools' default puts an import hook there instead, which every interpreter,
	@# each observer's worker too, runs at start: 2 MB more in each. A new module needs `make`
	@# again only outside the repository's root (tests and benchmarks import from the root).
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	@touch $@

# Each target's text after `##` is what `make help` prints.
help: ## list the targets and what each does
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z_-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: $(VENV)/.installed ## watch a synthetic target with injected anomalies for 30 s
	$(VENV)/bin/deucalion demo

# The integration tests start node_exporter, Alertmanager and Prometheus from Debian's packages.
# As root with apt-get they are installed when missing; otherwise those tests skip and say what
# to install (with DEUCALION_REQUIRE_INTEGRATION=1 such a skip is a failure).
servers: ## install node_exporter, Alertmanager and Prometheus from Debian's packages (as root)
	@missing=""; \
	for p in $(SERVERS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing$$missing from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "Not installing$$missing (needs root and apt-get): the integration tests will skip."; \
	fi

test: $(VENV)/.installed servers ## run the test suite (the integration tests start real servers)
	$(PY) -m pytest

lint: $(VENV)/.installed ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check deucalion tests benchmarks examples deploy

typecheck: $(VENV)/.installed ## mypy, strict
	$(VENV)/bin/mypy

bench: $(VENV)/.installed servers ## run the benchmarks (figures go to benchmarks/results.*)
	$(PY) -m benchmarks

# README's performance and quality figures, written from benchmarks/results.json and soak.json
# (run after `make bench` or `make soak`; tests/test_readme_results.py fails until it is).
results: $(VENV)/.installed ## write README's figures from benchmarks/results.json
	$(PY) -m benchmarks.report

soak: $(VENV)/.installed servers ## the long-running tests (marked slow)
	$(PY) -m pytest -m slow --timeout=1200 tests

# The image's pinned Python packages: a fresh venv made from pyproject.toml (with the injector
# extra, as deploy/docker/Dockerfile installs it), frozen. Run the tests after regenerating.
constraints: ## regenerate deploy/docker/constraints.txt, the image's pinned packages
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/python -m pip install --quiet --upgrade pip
	.constraints-venv/bin/python -m pip install --quiet '.[injector]' numpy
	{ head -3 deploy/docker/constraints.txt; .constraints-venv/bin/python -m pip freeze --exclude deucalion; } > deploy/docker/constraints.new
	mv deploy/docker/constraints.new deploy/docker/constraints.txt
	rm -rf .constraints-venv

clean: ## remove .venv and the caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

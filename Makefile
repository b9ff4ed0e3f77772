# A fresh machine needs only python3: the first target that needs the virtualenv creates .venv,
# installs uv (pinned in requirements/bootstrap.txt) and then, from uv.lock, what that target needs.
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
RUN := $(UV) run --frozen --no-sync


.PHONY: help venv test test-examples lint bench soak lock demo docs format clean

help:
	@echo "make demo   run the main job: podpromo (uploads, jobs on 2 worker processes, one killed) against failing upstreams"
	@echo "make test   run the test suite with coverage, then each example's tests (needs Redis and PostgreSQL)"
	@echo "make lint   ruff + mypy --strict + lint-imports (the layer contracts in pyproject.toml)"
	@echo "make bench  run benchmarks/ and rewrite BENCHMARKS.md"
	@echo "make soak   run 3 nodes for 120 s under chaos (needs redis-server and PostgreSQL); rewrite RELIABILITY.md"
	@echo "make lock   re-resolve uv.lock after editing pyproject.toml"
	@echo "make docs   build the documentation site strictly (mkdocs-material) into site/"

# Two installs, two stamps. `make demo` needs the core and the extras the demo uses, nothing else; `make test`,
# `make lint` and `make bench` need the dev and bench groups (which install buttress[all]). The demo's sync is
# --inexact: it adds what it lacks and removes nothing, so it never undoes the dev install (a superset of it).
# The demo (examples/podpromo) uses files, jobs and the database; redis for --redis or BUTTRESS_REDIS_URL. No
# system package: without libmagic the files helper reads types with the pure-Python filetype package.
DEMO_EXTRAS := --extra cli --extra server --extra db --extra jobs --extra files --extra redis

venv: $(VENV)/.installed-dev

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements/bootstrap.txt

$(VENV)/.installed-dev: uv.lock pyproject.toml requirements/bootstrap.txt | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

$(VENV)/.installed-demo: uv.lock pyproject.toml requirements/bootstrap.txt | $(UV)
	$(UV) sync --frozen --inexact --no-default-groups $(DEMO_EXTRAS)
	@touch $@

# Each example is an app of its own, with jobs and schedules it registers when imported: its tests run in a
# pytest process of their own, as an app's would, so no example's registrations reach another's or buttress's.
EXAMPLES := $(sort $(dir $(wildcard examples/*/tests/)))

test: venv
	$(RUN) coverage erase
	$(RUN) pytest --cov=buttress --cov-report=term-missing $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-examples

test-examples: venv
	@for tests in $(EXAMPLES); do echo "make: pytest $$tests"; $(RUN) pytest -q $$tests || exit 1; done

lint: venv
	$(RUN) ruff check src tests benchmarks examples .ci
	$(RUN) ruff format --check src tests benchmarks examples .ci
	$(RUN) mypy
	$(RUN) lint-imports

format: venv
	$(RUN) ruff format src tests benchmarks examples .ci
	$(RUN) ruff check --fix src tests benchmarks examples .ci

bench: venv
	$(RUN) python -m benchmarks

# The multi-node soak (docs/soak.md); SOAK_ARGS="--nodes 5 --seconds 600" for a longer one.
soak: venv
	$(RUN) python -m benchmarks.soak $(SOAK_ARGS)

# The documentation site (mkdocs.yml); --strict turns every warning (a broken link or anchor) into a failure.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict

lock: | $(UV)
	$(UV) lock
	$(MAKE) venv

# DEMO_ARGS="--episodes 48 --redis" for a bigger batch on a throwaway redis-server; "--json" for machines.
demo: $(VENV)/.installed-demo
	$(RUN) python -m examples.podpromo.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage .coverage.* htmlcov

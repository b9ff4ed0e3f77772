# A fresh machine needs only python3: the first target that needs the virtualenv creates .venv,
# installs uv (pinned in requirements/bootstrap.txt) and then everything else from uv.lock.
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
RUN := $(UV) run --frozen --no-sync

.PHONY: help venv test lint bench lock demo format clean

help:
	@echo "make demo   run the main job: an HTTP batch through per-host policies against failing upstreams"
	@echo "make test   run the test suite with coverage (needs Redis and PostgreSQL for the service tests)"
	@echo "make lint   ruff + mypy --strict + lint-imports (the layer contracts in pyproject.toml)"
	@echo "make bench  run benchmarks/ and rewrite BENCHMARKS.md"
	@echo "make lock   re-resolve uv.lock after editing pyproject.toml"

venv: $(VENV)/.installed

$(VENV)/.installed: uv.lock pyproject.toml requirements/bootstrap.txt
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements/bootstrap.txt; }
	$(UV) sync --frozen --all-groups
	@touch $@

test: venv
	$(RUN) coverage erase
	$(RUN) pytest --cov=buttress --cov-report=term-missing $(PYTEST_ARGS)

lint: venv
	$(RUN) ruff check src tests benchmarks
	$(RUN) ruff format --check src tests benchmarks
	$(RUN) mypy
	$(RUN) lint-imports

format: venv
	$(RUN) ruff format src tests benchmarks
	$(RUN) ruff check --fix src tests benchmarks

bench: venv
	$(RUN) python -m benchmarks

lock:
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/python -m pip install -q -r requirements/bootstrap.txt; }
	$(UV) lock
	$(MAKE) venv

demo: venv
	$(RUN) buttress demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage .coverage.* htmlcov

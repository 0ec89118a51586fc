# The project's tasks. `make` lists them; `.ci/run` runs `make ci` on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
QUICK := not browser and not k8s and not spark and not cluster and not slow

.PHONY: help venv quick test lint types imports spell check ci demo

help:
	@echo "make venv     the virtualenv with everything the tests need (.venv)"
	@echo "make quick    the unit and contract tests on one Redis node (about 30 s)"
	@echo "make test     the whole suite (what CI runs)"
	@echo "make lint     ruff check and ruff format --check"
	@echo "make types    mypy --strict on the code and the tests"
	@echo "make imports  the layers contract (lint-imports)"
	@echo "make spell    codespell on the code and the docs"
	@echo "make check    lint, types, imports and spelling"
	@echo "make ci       check, then the whole suite"
	@echo "make demo     the service on its embedded Redis, trained on the bundled sample"

$(VENV)/bin/pytest:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e '.[dev,spark]'

venv: $(VENV)/bin/pytest

quick: venv
	$(VENV)/bin/pytest -q tests/unit tests/contract -m "$(QUICK)"

test: venv
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: venv
	$(VENV)/bin/mypy

imports: venv
	$(VENV)/bin/lint-imports

spell: venv
	$(VENV)/bin/codespell recsvc training tests benchmarks k8s README.md CONTRIBUTING.md

check: lint types imports spell

ci: test check

demo: venv
	$(VENV)/bin/recsvc demo

# Two commands for a new user:  `make run` (install + start with the demo)  and  `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its test tools

run: install  ## start the service on its embedded defaults with the built-in demo source
	$(BIN)/escalations serve --demo

test: install  ## the whole test suite (PostgreSQL tests run when the local server answers)
	bash tests/setup_browser.sh
	$(BIN)/pytest

check: install  ## lint, format and type checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: install  ## the benchmarks whose figures are in the README
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

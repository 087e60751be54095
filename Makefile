# etem-notebooks: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.etem-installed
PROFILE ?= quick
OUTPUT ?= outputs
# PyTorch's OpenMP threads spin-wait by default; on a shared or busy 2-core machine that slows
# inference by up to 10x (measured), so idle threads sleep instead.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help install run test lint lab strip check clean

help:
	@echo "make run    - install into $(VENV) if needed, execute every notebook (PROFILE=$(PROFILE)) into $(OUTPUT)/"
	@echo "make test   - install into $(VENV) if needed, run ruff and pytest (unit + notebook smoke tests)"
	@echo "make lab    - open JupyterLab on notebooks/"
	@echo "make strip  - clear outputs from the notebooks before committing"

# The virtual environment is (re)built when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[notebooks,dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m etem_helpers.course run --profile $(PROFILE) --output $(OUTPUT)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	MPLBACKEND=Agg $(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

strip: $(STAMP)
	$(BIN)/python -m etem_helpers.course strip

check: $(STAMP)
	$(BIN)/python -m etem_helpers.course check

clean:
	rm -rf $(OUTPUT) .pytest_cache .ruff_cache

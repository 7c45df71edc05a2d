# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test reproduce install clean ui

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the main job (ReLU vs sigmoid vs tanh on a deep MLP, embedded digits data), then print how to open the MLflow UI.
demo: $(STAMP)
	$(BIN)/dlbench run experiments/relu_vs_sigmoid.toml

## Run the test suite (slow reproductions excluded; see `make reproduce`).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Long reproductions of the published ablations (marked slow).
reproduce: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -o addopts="-p no:cacheprovider"

ui: $(STAMP)
	$(BIN)/dlbench ui

clean:
	rm -rf $(VENV) *.egg-info

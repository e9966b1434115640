# Two entry points for a fresh machine with nothing but Python 3.10+:
#   make test     create .venv if missing, install everything, run ruff and pytest
#   make dataset  render a small procedural low-light RGB-D dataset into out/dataset
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint dataset bench clean-venv

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

dataset: $(STAMP)
	$(BIN)/lowlight synth --out out/dataset --views 200 --size 320x240 --seed 0

bench: $(STAMP)
	$(BIN)/lowlight bench synth --size 320x240 --views 40

# torch==2.13.0 first: that pin resolves to the local CPU build, and the `train` extra's
# range is then already satisfied (no CUDA wheels are pulled).
$(STAMP): setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off torch==2.13.0
	$(BIN)/python -m pip install --progress-bar off -e '.[train,ros,test]'
	touch $@

clean-venv:
	rm -rf $(VENV)

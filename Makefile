# attrnet: `make demo` and `make test` are the two commands (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.attrnet-installed
DEMO ?= demo

.PHONY: setup test test-slow demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# torch: keep one already present (GPU machines), else the CPU-tested pin (local cache here)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || \
		$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[cpu,dev]"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

demo: setup
	$(BIN)/attrnet data synth --preset celeba --out $(DEMO)/celeba --num 2000 --seed 0
	$(BIN)/attrnet data info celeba:$(DEMO)/celeba

clean:
	rm -rf $(DEMO) .pytest_cache

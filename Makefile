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
	$(BIN)/python -m pip install -q -e ".[cpu,dev,ray]"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

demo: setup
	@echo "== 1/5 synthetic CelebA-format faces (planted attribute groups) =="
	$(BIN)/attrnet data synth --preset celeba --out $(DEMO)/celeba --num 4000 --seed 0
	$(BIN)/attrnet data info celeba:$(DEMO)/celeba
	@echo "== 2/5 train a tiny model with adaptive loss weighting (AWMT), classes balanced for mA =="
	$(BIN)/attrnet train --data celeba:$(DEMO)/celeba --out $(DEMO)/run --arch tiny \
		--weighting awmt --epochs 12 --batch-size 32 --lr 0.02 --pos-weight ratio \
		--threshold-objective balanced --best-metric mA --workers 1 --device cpu --seed 0
	@echo "== 3/5 evaluate on the test split =="
	$(BIN)/attrnet eval $(DEMO)/run/best.safetensors --data celeba:$(DEMO)/celeba --split test
	@echo "== 4/5 fold + export to ONNX (fp32 and int8), with parity checks =="
	$(BIN)/attrnet export $(DEMO)/run/best.safetensors --data celeba:$(DEMO)/celeba
	$(BIN)/attrnet export $(DEMO)/run/best.safetensors --data celeba:$(DEMO)/celeba --precision int8
	@echo "== 5/5 predict the test images to CSV =="
	$(BIN)/attrnet predict $(DEMO)/celeba/img_align_celeba --model $(DEMO)/run/best.onnx --out $(DEMO)/preds.csv
	@echo "demo done: run in $(DEMO)/run, predictions in $(DEMO)/preds.csv"

clean:
	rm -rf $(DEMO) .pytest_cache

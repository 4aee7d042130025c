# make demo: quantize a built-in sample image into out/ (creates .venv, installs the runtime lock).
# make test: ruff, mypy and pytest (creates .venv, installs the dev lock).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
K ?= 16

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.lock pyproject.toml setup.py src/colorquant/_cpu/kernels.c | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

demo: $(VENV)/.runtime
	@mkdir -p out
	$(BIN)/colorquant quantize "$$($(BIN)/python -c "import matplotlib.cbook as c; print(c.get_sample_data('grace_hopper.jpg', asfileobj=False))")" \
		-k $(K) -o out/grace_hopper_$(K).png --preview out/grace_hopper_$(K)_preview.png --force
	@echo "wrote out/grace_hopper_$(K).png and out/grace_hopper_$(K)_preview.png"

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev
	$(BIN)/mypy

pytest: $(VENV)/.dev
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache

# make demo: quantize a built-in sample image into out/ (creates .venv, installs the base runtime
# lock and the plot extra's: --preview draws with matplotlib).
# make test: ruff, mypy, pytest in two configurations (the full one in .venv, from the dev lock with
# both extras; the minimal one in .venv-min, the base install only plus pytest and hypothesis,
# where the tests needing an extra skip), the kernel tests on a serial clang build, and the
# documentation site built strictly (installs clang with apt-get where it is missing; with the
# ComfyUI snapshot at $(SHARED)/comfyui, also .venv-comfyui for tests/test_comfyui_server.py).
# make docs: the documentation site (mkdocs.yml, docs/) into build/site/; any warning fails it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
K ?= 16

.PHONY: demo test lint typecheck pytest pytest-min test-serial wheel-test docs bench clean comfyui-venv

SHARED ?= ../shared
# The compiled core: module.c and the stage files it includes (a change to any rebuilds).
CORE_SOURCES := $(wildcard src/colorquant/_cpu/*.c src/colorquant/_cpu/*.h)
COMFYUI_VENV := .venv-comfyui

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.lock pyproject.toml setup.py $(CORE_SOURCES) | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The plot extra (matplotlib) on top of the base install: what make demo uses.
$(VENV)/.plot: requirements-plot.lock $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-plot.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock requirements-torch.lock requirements-plot.lock $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

# The minimal configuration: `pip install colorquant` without extras (the base lock: NumPy,
# Pillow, click, tqdm) plus pytest and hypothesis (requirements-min.lock); no torch, no
# matplotlib. About 30 seconds from a warm pip cache, most of it compiling the C core.
MIN := .venv-min
$(MIN)/.ready: requirements.lock requirements-min.lock pyproject.toml setup.py $(CORE_SOURCES)
	rm -rf $(MIN)
	$(PYTHON) -m venv $(MIN)
	$(MIN)/bin/pip install --quiet -r requirements.lock -r requirements-min.lock
	$(MIN)/bin/pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.plot
	@mkdir -p out
	$(BIN)/colorquant quantize "$$($(BIN)/python -c "import matplotlib.cbook as c; print(c.get_sample_data('grace_hopper.jpg', asfileobj=False))")" \
		-k $(K) -o out/grace_hopper_$(K).png --preview out/grace_hopper_$(K)_preview.png --force
	@echo "wrote out/grace_hopper_$(K).png and out/grace_hopper_$(K)_preview.png"

# ComfyUI's own Python for the real-ComfyUI test: its pinned requirements (--no-deps: the
# torchvision it would pull does not load beside CPU torch; the snapshot's support folder has a
# stand-in), colorquant's runtime lock and colorquant itself (editable: the tested source).
# Built only where the snapshot is; about 2 minutes from a warm pip cache.
ifneq ($(wildcard $(SHARED)/comfyui/main.py),)
comfyui-venv: $(COMFYUI_VENV)/.ready
else
comfyui-venv:
	@echo "no ComfyUI snapshot at $(SHARED)/comfyui: tests/test_comfyui_server.py will be skipped"
endif

$(COMFYUI_VENV)/.ready: requirements-comfyui.lock requirements-torch.lock requirements-plot.lock \
		requirements.lock pyproject.toml setup.py $(CORE_SOURCES)
	rm -rf $(COMFYUI_VENV)
	$(PYTHON) -m venv $(COMFYUI_VENV)
	$(COMFYUI_VENV)/bin/pip install --quiet --no-deps -r requirements-torch.lock \
		-r requirements-plot.lock -r requirements-comfyui.lock
	$(COMFYUI_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks fuzz integrations docs/hooks
	$(BIN)/ruff format --check src tests benchmarks fuzz integrations docs/hooks

typecheck: $(VENV)/.dev
	$(BIN)/mypy
	$(BIN)/mypy integrations/comfyui

pytest: $(VENV)/.dev comfyui-venv
	$(BIN)/python -m pytest --durations=15

# The suite without the extras: what needs torch, matplotlib, ray, datasets, diffusers or the
# dev tools skips with the reason naming the extra; the rest must pass.
pytest-min: $(MIN)/.ready
	$(MIN)/bin/python -m pytest -p no:cacheprovider -rs

# The compiled core built without OpenMP by clang (Debian's has no libomp, so the build's probe
# finds none; COLORQUANT_OPENMP=0 makes sure), and the kernel tests run against that build.
SERIAL := build/serial
KERNEL_TESTS := tests/test_serial_build.py tests/test_dither_kernels.py tests/test_nearest.py \
	tests/test_kmeans.py tests/test_histogram.py tests/test_init.py tests/test_dither.py

test-serial: $(VENV)/.dev
	@command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq clang; }
	rm -rf $(SERIAL)
	CC=clang COLORQUANT_OPENMP=0 $(BIN)/python setup.py -q build_ext \
		--build-lib $(SERIAL)/lib --build-temp $(SERIAL)/tmp
	COLORQUANT_TEST_KERNELS="$$(ls $(SERIAL)/lib/colorquant/_cpu/_kernels*)" \
		$(BIN)/python -m pytest $(KERNEL_TESTS)

# The release build as a user gets it: the sdist and the wheel (python -m build; the wheel is
# cp311-abi3 on CPython >= 3.11, stripped by COLORQUANT_STRIP=1), the wheel repaired by auditwheel
# to a manylinux tag (libgomp vendored) and checked by abi3audit (no symbol outside the stable ABI
# of 3.11), then installed with binaries only into a fresh venv without torch: the base lock and
# the minimal test lock from the index, colorquant from the wheelhouse alone (--no-index). The suite's minimal configuration runs there from a copy of
# tests/ (the checkout's src/ is not on sys.path; tests/test_wheel.py checks colorquant comes from
# the venv's site-packages) with PATH holding only the venv's bin and CC=/bin/false: no compiler.
# The modules that read the checkout's files (build metadata, docs, fuzz, ComfyUI, install) stay
# out. About 2 minutes.
WHEEL := build/wheel
WHEEL_SKIP := test_build test_comfyui test_comfyui_server test_docs test_fuzz test_install

wheel-test: $(VENV)/.dev
	rm -rf $(WHEEL)
	COLORQUANT_STRIP=1 $(BIN)/python -m build --outdir $(WHEEL)/dist . > $(WHEEL).log 2>&1 \
		|| { cat $(WHEEL).log; exit 1; }
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/auditwheel repair --wheel-dir $(WHEEL)/wheelhouse \
		$(WHEEL)/dist/colorquant-*.whl
	$(BIN)/auditwheel show $(WHEEL)/wheelhouse/colorquant-*manylinux*.whl
	case "$$(ls $(WHEEL)/wheelhouse)" in *-abi3-*) \
		$(BIN)/abi3audit --strict --report $(WHEEL)/wheelhouse/colorquant-*.whl;; esac
	@ls -l $(WHEEL)/dist $(WHEEL)/wheelhouse
	$(PYTHON) -m venv $(WHEEL)/venv
	$(WHEEL)/venv/bin/pip install --quiet --only-binary :all: -r requirements.lock \
		-r requirements-min.lock
	$(WHEEL)/venv/bin/pip install --quiet --only-binary :all: --no-index \
		--find-links $(WHEEL)/wheelhouse colorquant
	mkdir -p $(WHEEL)/run && cp -r tests $(WHEEL)/run/
	cd $(WHEEL)/run && env -i HOME="$$HOME" PATH="$(CURDIR)/$(WHEEL)/venv/bin" CC=/bin/false \
		"$(CURDIR)/$(WHEEL)/venv/bin/python" -c "import shutil, sys; \
		bad = [c for c in ('cc', 'gcc', 'clang', 'c++') if shutil.which(c)]; \
		sys.exit(f'a compiler is on PATH: {bad}' if bad else 0)"
	cd $(WHEEL)/run && env -i HOME="$$HOME" PATH="$(CURDIR)/$(WHEEL)/venv/bin" CC=/bin/false \
		"$(CURDIR)/$(WHEEL)/venv/bin/python" -m pytest -p no:cacheprovider -rs tests \
		$(foreach m,$(WHEEL_SKIP),--ignore=tests/$(m).py)

# The site, strictly (mkdocs.yml sets strict: true; --strict says it again): a warning of the
# pages, the links or the docstrings fails the build. Its figures are the committed PNGs of
# docs/figures/ (benchmarks/figures.py redraws them; no benchmark runs here).
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck pytest pytest-min test-serial wheel-test docs

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) $(MIN) $(COMFYUI_VENV) out .mypy_cache .ruff_cache .pytest_cache

# The two commands of README.md: `make demo` and `make test`.
# Both build .venv from constraints.txt (the tested pins) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first, pinned, so pip does not pull a multi-GB CUDA build.
# For a GPU, e.g.: make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP_TORCH_FLAGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
# The synthetic sample (3072 x 2304 at 0.5 um/px, seed 4: all four classes),
# the same one napari's File > Open Sample > napari-razn makes.
SAMPLE ?= $(OUT)/synthetic-sample.tif
OUT ?= out/demo
PYTEST_ARGS ?=

# The core alone (no napari, no Qt), as `pip install napari-razn` gives it.
CORE_VENV ?= .venv-core
CORE_BIN := $(CORE_VENV)/bin

.PHONY: demo test test-core lint env clean

$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_TORCH_FLAGS) "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[napari,distributed,testing,benchmarks]"
	# ome-zarr-py's reader checks that other tools find our store's labels. Its
	# fsspec[s3] requirement has no s3fs for the pinned fsspec on the index,
	# and reading a local store needs none of it: install it alone.
	$(BIN)/pip install -q --no-deps -c constraints.txt ome-zarr
	touch $@

env: $(VENV)/.installed

# On a display: napari with the sample, the RAZN panel and live
# segmentation. Headless: the sample's facts, then `razn segment` with the
# demo model, writing the labels store, QuPath GeoJSON and an overview PNG
# to $(OUT)/.
demo: env
	@mkdir -p "$(OUT)"
	@if [ ! -f "$(SAMPLE)" ]; then \
		$(BIN)/razn synth "$(SAMPLE)" --size 3072x2304 --seed 4 --mpp 0.5 --invasive desmoplastic; \
	fi
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -z "$$CI" ]; then \
		$(BIN)/python -m napari_razn.demo "$(SAMPLE)"; \
	else \
		$(BIN)/razn info "$(SAMPLE)"; \
		$(BIN)/razn segment "$(SAMPLE)" --model demo --out "$(OUT)"; \
	fi

# The whole suite, under a virtual display when there is none; then the
# core's tests against the wheel alone (test-core).
test: env
	bash scripts/system-deps.sh
	@if [ -n "$$DISPLAY" ]; then \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi
	$(MAKE) test-core

# A fresh venv with torch and the core's pinned dependencies, made again
# only when setup.cfg or constraints.txt change; the wheel itself is built
# (from setup.cfg and pyproject.toml, no setup.py) and reinstalled every run.
$(CORE_VENV)/.installed: setup.cfg constraints.txt
	rm -rf $(CORE_VENV)
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_BIN)/python -m pip install -q --upgrade pip
	$(CORE_BIN)/pip install -q $(PIP_TORCH_FLAGS) "$(TORCH)"
	$(CORE_BIN)/pip install -q -c constraints.txt pytest hypothesis
	touch $@

# The wheel, installed without extras into the core venv, then tests/razn
# run against it from the repository root: `razn` resolves to the installed
# wheel (src/ is not on the path), so a file left out of the wheel or a
# dependency missing from install_requires fails here.
test-core: env $(CORE_VENV)/.installed
	rm -rf $(CORE_VENV)/dist
	$(BIN)/python -m build --wheel --outdir $(CORE_VENV)/dist .
	$(CORE_BIN)/pip install -q -c constraints.txt $(CORE_VENV)/dist/*.whl
	$(CORE_BIN)/pip install -q --no-deps --force-reinstall $(CORE_VENV)/dist/*.whl
	@# From inside the venv folder, where no source tree is on the path.
	cd $(CORE_VENV) && bin/python -c "import importlib.util as u, sys, razn; \
		bad = [n for n in ('napari', 'qtpy', 'magicgui') if u.find_spec(n)]; \
		sys.exit(f'the core venv has {bad}') if bad else print('core:', razn.__file__)"
	$(CORE_BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests/razn

lint: env
	$(BIN)/ruff check src napari_razn tests benchmarks scripts
	$(BIN)/ruff format --check src napari_razn tests benchmarks scripts

clean:
	rm -rf $(VENV) $(CORE_VENV) build dist *.egg-info out

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
SAMPLE ?= ../shared/data/slides/CMU-1-Small-Region.svs
OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test lint env clean

$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_TORCH_FLAGS) "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[napari,distributed,testing,benchmarks]"
	touch $@

env: $(VENV)/.installed

# On a display: napari with the slide and the RAZN panel. Headless: the
# slide's facts and an overview picture in $(OUT)/.
demo: env
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -z "$$CI" ]; then \
		$(BIN)/napari --with napari-razn RAZN -- "$(SAMPLE)"; \
	else \
		mkdir -p "$(OUT)"; \
		$(BIN)/razn info "$(SAMPLE)" --overview "$(OUT)/$$(basename "$(SAMPLE)" | sed 's/\.[^.]*$$//').overview.png"; \
	fi

# The whole suite, under a virtual display when there is none.
test: env
	bash scripts/system-deps.sh
	@if [ -n "$$DISPLAY" ]; then \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

lint: env
	$(BIN)/ruff check src napari_razn tests benchmarks scripts
	$(BIN)/ruff format --check src napari_razn tests benchmarks scripts

clean:
	rm -rf $(VENV) build dist *.egg-info out

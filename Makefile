# Two entry points that set themselves up on a fresh machine (Python 3.11 and
# access to the package registry):  `make demo`  and  `make test`.
# Both create .venv on first use and install everything in ONE pip resolver
# run (see setup.py for the pins; a second, separate `pip install tensorflow`
# would upgrade numpy and break Scipion's scipy).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.faml_tomo-installed
DEMO_OUT ?= results/demo
PYTEST_ARGS ?=
# test files spread over this many processes (pytest-xdist; a file's tests stay
# together); PYTEST_WORKERS=0 runs them in this process (e.g. for --pdb)
PYTEST_WORKERS ?= 2

.PHONY: demo demo-quick screenshots gui test test-all lint scipion-tests bench venv clean gold-table

venv: $(STAMP)

$(STAMP): setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/faml-tomo demo --out $(DEMO_OUT)

demo-quick: $(STAMP)
	$(BIN)/faml-tomo demo --quick --out $(DEMO_OUT)

# The demo project in the real Scipion GUI on a virtual screen (Xvfb): project
# window, every protocol form and viewer, as PNGs in $(DEMO_OUT)/screenshots;
# SCREENSHOT_ARGS="--docs docs/images" also refreshes the README's images.
# Needs: apt-get install -y xvfb imagemagick
SCREENSHOT_ARGS ?=
screenshots: $(STAMP)
	@command -v Xvfb >/dev/null && command -v import >/dev/null || \
	    { echo "make screenshots needs Xvfb and ImageMagick: apt-get install -y xvfb imagemagick"; exit 2; }
	@test -f $(DEMO_OUT)/faml_tomo_demo/project.sqlite || $(BIN)/faml-tomo demo --out $(DEMO_OUT)
	$(BIN)/python tools/screenshots.py --demo $(DEMO_OUT) $(SCREENSHOT_ARGS)

# Open the demo project in the Scipion GUI (needs a display).
gui: $(STAMP)
	$(BIN)/python tools/open_project.py --demo $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Slow full-size accuracy tests as well (not in CI's default run).
test-all: $(STAMP)
	$(BIN)/python -m pytest --runslow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The protocol tests the way Scipion runs them (pw_run_tests takes module names).
PROTOCOL_TESTS = $(shell grep -lE "^class .*(FamlTomoProtocolTest|StreamingProtocolTest)" faml_tomo/tests/test_*.py | sed 's|/|.|g; s|\.py$$||')
scipion-tests: $(STAMP)
	$(BIN)/python -m faml_tomo.tests.scipion_env $(BIN)/python -m pyworkflow.apps.pw_run_tests $(PROTOCOL_TESTS)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .scipion .pytest_cache .ruff_cache .mypy_cache *.egg-info

# Regenerate the first-principles gold table (abTEM multislice, ~25 min on 2
# cores) in its own environment: abTEM is a data-making tool, not a runtime
# dependency (setup.py extra "gold").
gold-table:
	@test -x .venv-gold/bin/python || $(PYTHON) -m venv .venv-gold
	.venv-gold/bin/python -m pip install --quiet "abtem==1.0.9" "numpy==1.26.1" \
	    "scipy>=1.10,<1.11" "mrcfile>=1.4,<=1.4.3" emtable "scikit-image>=0.22,<0.25"
	PYTHONPATH=. .venv-gold/bin/python -m faml_tomo.simulation.gold_multislice \
	    --out faml_tomo/simulation/data/gold_table.npz

# mispec — two commands: `make run` (the embedded default study) and `make test`
# (`make test-fast`: the unit tier alone, about a minute).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONSTRAINTS ?= constraints/cpu.txt
LINT_DIRS := mispec tests $(wildcard benchmarks) $(wildcard scripts)

.PHONY: venv browser run reproduce studies study-frac-sweep test test-fast test-slow test-cuda lint typecheck format docs bench clean

venv: $(STAMP)

# Re-installs only when the package metadata or the constraints change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) torch
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev,plot,dask,llc]'
	touch $(STAMP)

# The report test screenshots report.html in headless Chromium. Installs Debian's `chromium`
# when no Chromium is on PATH and we are root with apt (CI containers); a no-op otherwise.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report test (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "note: no chromium on PATH; install it (apt-get install chromium) for the report test"; \
	  fi; }

run: venv
	$(BIN)/mispec run specs/induction_heads.yaml

# Every CPU-sized shipped study, its claims checked: one table (study, claim, verdict,
# measured); exits 3 when a claim fails (scripts/reproduce.py).
reproduce: venv
	$(BIN)/python scripts/reproduce.py

# The sweep studies (README, "Sweeps"): the grokking phase diagram (weight decay x training
# fraction at p = 23) and induction heads by depth, each with its claims checked (exit 3 when
# one fails); then `mispec plot runs/grokking-phase-diagram grokked` draws the phase diagram.
studies: venv
	$(BIN)/mispec run specs/grokking_phase_diagram.yaml --check
	$(BIN)/mispec run specs/induction_depth.yaml --check

# The grokking paper's own training-fraction sweep at p = 113: minutes of CPU per point.
study-frac-sweep: venv
	$(BIN)/mispec run specs/grokking_frac_sweep.yaml --check

lint: venv
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: venv
	$(BIN)/mypy mispec

format: venv
	$(BIN)/ruff check --fix $(LINT_DIRS)
	$(BIN)/ruff format $(LINT_DIRS)

# Generated docs: the catalogue and the editor schema, from the registries (a test fails
# when they are stale, e.g. after adding a metric, task or arg).
docs: venv
	$(BIN)/mispec list --builtin --format markdown > docs/catalogue.md
	$(BIN)/mispec schema --builtin > docs/spec.schema.json

test: venv browser lint typecheck
	$(BIN)/python -m pytest -q --durations=15

# The unit tier (tests/unit/): no trained fixture, no study run; for the edit-test loop.
test-fast: venv
	$(BIN)/python -m pytest -q tests/unit

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

# On a machine with a CUDA GPU: the batched device path against the CPU path.
test-cuda: venv
	$(BIN)/python -m pytest -q -m cuda

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mispec runs

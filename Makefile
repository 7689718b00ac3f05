# Set-up and checks. `make demo` and `make test` each work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.fp16lint-installed

.PHONY: install demo test lint docs

# PyTorch first, pinned, so that the `runtime` extra's range installs nothing more
# (a bare range in a fresh venv would fetch the newest, multi-GB CUDA build).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps timm==1.0.31
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/fp16lint fixtures/demo; test $$? -le 1

# pytest exits 5 when it collects nothing: that is a failure here too, but reported as such.
test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

docs: install
	$(PY) -m fp16lint.docgen

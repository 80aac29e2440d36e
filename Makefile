# mailbag: `make serve` runs a server on loopback; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= var

.PHONY: serve test lint typecheck conformance bench clean fuzz

# setup.py builds the optional C extension (imap/_sendmany.c).
$(STAMP): pyproject.toml setup.py src/mailbag/imap/_sendmany.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,fast]'
	touch $(STAMP)

# Sets up the venv, initialises ./var with a demo account (its generated
# password is printed once) and serves IMAP on 127.0.0.1:1143 (STARTTLS) and
# 127.0.0.1:1993 (TLS).
serve: $(STAMP)
	@if [ ! -f $(DATA)/mailbag.sqlite3 ]; then \
	  $(VENV)/bin/mailbag user add demo --generate --data-dir $(DATA); \
	fi
	$(VENV)/bin/mailbag serve --data-dir $(DATA)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

conformance: $(STAMP)
	$(PY) tools/conformance.py

# Fuzz the wire parser, SASL mechanisms and MIME parser for FUZZ_MINUTES
# (tests/fuzz holds the targets; `make test` runs them briefly).
FUZZ_MINUTES ?= 10
fuzz: $(STAMP)
	$(PY) tools/fuzz.py --minutes $(FUZZ_MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

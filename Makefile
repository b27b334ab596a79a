# Two commands on a fresh machine: `make run` (the chat on the shipped article) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run index test browser bench eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# exactly this version: the local CPU wheel (anything newer pulls gigabytes of CUDA)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: install
	@echo "The qa command is in .venv: .venv/bin/qa ask \"...\" (or: source .venv/bin/activate, then qa ...)"
	$(BIN)/python app.py

index: install
	$(BIN)/qa index

# headless Chromium for the browser test (Debian packages), installed once if missing
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

test: install browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/bench.py

eval: install
	$(BIN)/qa eval ../shared/data/qa/squad-v1.1-dev-part-eval.json --mode reader
	$(BIN)/qa eval ../shared/data/qa/squad-v1.1-dev-part-eval.json --mode open

clean:
	rm -rf index .pytest_cache

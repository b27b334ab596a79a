# Two commands on a fresh machine: `make run` (the chat on the shipped article) and `make test`.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package at an exact version (issue 39): pyproject.toml's ranges with the extras test (postgres, scale)
# resolved once, for Python 3.11 on Linux x86_64, by `make lock`; each file checked against its hashes
LOCK := requirements.lock
# torch's line in the lock: the CPU build, a wheel on this machine's disk that pip finds through its
# configuration (find-links); pinned without a hash, so installed on its own, first
TORCH = $(shell sed -n 's/^\(torch==[^ ]*\).*/\1/p' $(LOCK))

.PHONY: install run index test browser bench eval clean lock

# Re-installed whenever the lock or pyproject.toml changes. The pip that `python3.11 -m venv` brings is
# enough (and stays the same from one day to the next): no upgrade.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -n "$(TORCH)" || { echo "no torch== line in $(LOCK)" >&2; exit 1; }
	# exactly the lock's torch, the local CPU wheel (a newer or plain one pulls gigabytes of CUDA); its
	# dependencies come from the lock, with their hashes
	$(BIN)/pip install --quiet --no-deps "$(TORCH)"
	# everything else as locked, hash-checked (torch, installed above, is trusted as installed). The lock
	# is the whole tree, so nothing is resolved (--no-deps; pip check below proves it consistent): the
	# pip 23.2 that the venv brings otherwise picks a newer release for a locked package asked with an
	# extra (justext's lxml[html_clean]) and refuses it as unpinned, as soon as that release is out
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	# the project itself, built by the lock's setuptools (no download of the newest one for the build)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# Refresh the lock on purpose, after a change to pyproject.toml's dependencies: pins already in the lock stay
# where the ranges still admit them; `make lock UPGRADE=1` takes the newest release of everything the ranges
# admit. uv, at a fixed version, resolves (into the venv); then `make install`, the tests, and commit the lock.
UV_VERSION := 0.13.9
TORCH_BUILD := torch==2.13.0+cpu
WHEELS ?= /opt/wheels
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/uv --version 2>/dev/null | grep -qx 'uv $(UV_VERSION).*' || $(BIN)/pip install --quiet uv==$(UV_VERSION)
	echo "$(TORCH_BUILD)" | $(BIN)/uv pip compile --quiet pyproject.toml - --extra test --extra postgres --extra scale \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_36 --find-links $(WHEELS) --generate-hashes \
	  --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(LOCK)
	# torch's line loses its hash: its wheel is this machine's, not a PyPI file
	{ echo "# Python 3.11, Linux x86_64. Install torch first, alone: pip install --no-deps torch==<its line below>;" ;\
	  echo "# then pip install -r $(LOCK); then pip install --no-deps --no-build-isolation -e . (make install)." ;\
	  echo "# torch is the CPU build pip finds on this machine (find-links in its configuration), so it has no hash;" ;\
	  echo "# every other file is checked against the hashes PyPI publishes." ;\
	  awk '/^torch==/ { sub(/ *\\$$/, ""); print; skip = 1; next } skip && /^ *--hash=/ { next } { skip = 0; print }' $(LOCK) ;\
	} > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

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

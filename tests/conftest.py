"""Shared fixtures: the real embedder and the real shipped reader, loaded once per session."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Nothing in the tests may download weights: every model comes from this checkout or site-packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The tests serve pages and feeds on 127.0.0.1 (tests/local_site.py), an address a fetch refuses by
# default; tests/test_fetch_safety.py turns this off again, in the Settings it passes, to test that.
os.environ.setdefault("QA_FETCH_PRIVATE", "1")

import pytest

from qa import QA, Settings
from qa.config import PACKAGE_ROOT
from qa.cpu import has_int8_vnni
from qa.embedding import Embedder
from qa.reader import Reader

SEED_ARTICLE = "run-to-the-west-korea-first-ai-feature-film.txt"
SEED_FILE = PACKAGE_ROOT / "seeds" / SEED_ARTICLE  # the shipped (git-tracked) article
# A folder holding that one article only: the rest of seeds/ is the user's (uploads, experiments) and
# must never change what the tests see.
SEEDS = Path(tempfile.mkdtemp(prefix="qa-seed-"))
shutil.copy2(SEED_FILE, SEEDS / SEED_ARTICLE)
atexit.register(shutil.rmtree, SEEDS, True)


# ONNX Runtime's int8 kernels differ by CPU: with AVX-512 VNNI or AMX (the Xeon the near-ties below were
# measured on) they add exactly; on AVX2 alone (u8s8 pairs summed in 16 bits) they round otherwise, and a
# few near-ties of the shipped reader tip the other way. Tests pinned to such a tie say so with this.
INT8_VNNI = has_int8_vnni()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def embedder(settings) -> Embedder:
    e = Embedder(settings.embedder)
    e.load()  # load now, once (on first use: export to ONNX)
    return e


@pytest.fixture(scope="session")
def reader(settings) -> Reader:
    r = Reader(settings.reader_path, settings.window_tokens, settings.window_stride, settings.max_answer_tokens)
    r.load()
    return r


@pytest.fixture
def make_qa(tmp_path, embedder, reader):
    """A QA over a private copy of the seed article (tests may edit it) with its own index folder."""

    def make(articles: Path | None = None, **overrides) -> QA:
        if articles is None:
            articles = tmp_path / "articles"
            if not articles.exists():
                shutil.copytree(SEEDS, articles)
        settings = Settings.from_env(articles=articles, index=tmp_path / "index", **overrides)
        return QA(settings=settings, embedder=embedder, reader=reader)

    return make


@pytest.fixture(scope="session")
def seed_qa(tmp_path_factory, embedder, reader) -> QA:
    """Read-only QA over the seed article, shared by the tests that only ask."""
    root = tmp_path_factory.mktemp("seed")
    shutil.copytree(SEEDS, root / "articles")
    return QA(settings=Settings.from_env(articles=root / "articles", index=root / "index"), embedder=embedder, reader=reader)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, embedder, reader):
    """The web chat on a free loopback port over a private copy of seeds/:
    {"qa": QA, "demo": gr.Blocks, "url": "http://127.0.0.1:PORT/"}; closed at the session's end."""
    import socket

    from qa.web import page as chat_app

    work = tmp_path_factory.mktemp("app")
    shutil.copytree(SEEDS, work / "articles")
    qa = QA(articles=work / "articles", index=work / "index", embedder=embedder, reader=reader)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(qa)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **chat_app.launch_options(qa))
    yield {"qa": qa, "demo": demo, "url": demo.local_url}
    demo.close()


@pytest.fixture(scope="session")
def app_qa(app_server) -> QA:
    return app_server["qa"]

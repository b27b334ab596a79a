"""Session fixtures for the web chat tests: one QA over a temp copy of seeds/ and one running app.

Import them in a test module (`from app_fixtures import app_qa, app_server`). The models come from
conftest.py's session fixtures `embedder` and `reader`, so they are loaded once for all the tests.
pytest makes one fixture definition per importing module, so the app is cached here: every module
shares the same QA and the same server.
"""
from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # app.py lives at the repo root, outside any package
    sys.path.insert(0, str(ROOT))

import app as chat_app  # noqa: E402
from qa import QA  # noqa: E402

_shared: dict = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path_factory, embedder, reader) -> dict:
    if not _shared:
        work = tmp_path_factory.mktemp("app")
        shutil.copytree(ROOT / "seeds", work / "articles")
        qa = QA(articles=work / "articles", index=work / "index", embedder=embedder, reader=reader)
        demo = chat_app.build_app(qa)
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                    max_file_size=chat_app.MAX_UPLOAD_BYTES)
        _shared.update(qa=qa, demo=demo, url=demo.local_url)
    return _shared


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, embedder, reader):
    """{"qa": QA, "demo": gr.Blocks, "url": "http://127.0.0.1:PORT/"}; the app closes at the session's end."""
    yield _start(tmp_path_factory, embedder, reader)
    if _shared:
        _shared.pop("demo").close()
        _shared.clear()


@pytest.fixture(scope="session")
def app_qa(app_server) -> QA:
    return app_server["qa"]

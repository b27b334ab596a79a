"""Run by tests/test_faults.py in a separate process (never collected by pytest):

    python tests/fault_worker.py kill POINT ARTICLES INDEX   # update the index, SIGKILL itself at POINT
    python tests/fault_worker.py unwritable ARTICLES INDEX   # add/remove with the index folder unwritable
    python tests/fault_worker.py pg-kill N ARTICLES URL      # update a PostgreSQL store, SIGKILL itself once the
                                                             # Nth article's rows are written, before its commit

The kill points wrap the store's own steps, so the process dies exactly there, as with kill -9.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import QA, QAError, Settings, runtime
from qa.embedding import Embedder
from qa.indexing import refresh_index
from qa.stores import embedded as store


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at(point: str) -> None:
    if point == "embedding":  # after the first batch of the new article's passages
        calls = []
        run = runtime.OnnxEncoder.run

        def dying(self, tokens):
            calls.append(1)
            if len(calls) == 2:
                die()
            return run(self, tokens)
        runtime.OnnxEncoder.run = dying
    elif point == "files-written":  # the new version half written in its .tmp- folder
        write = store.faiss.write_index

        def dying(*a):
            write(*a)
            die()
        store.faiss.write_index = dying
    elif point == "before-switch":  # the version folder in place, CURRENT not switched yet
        class Os:  # this module's os, with replace() dying: nothing else in the process is touched
            def __getattr__(self, name):
                return getattr(os, name)

            replace = staticmethod(lambda *a: die())
        store.os = Os()
    elif point == "before-clean-up":  # CURRENT switched, old versions not removed yet
        store.clean_up = lambda *a, **k: die()
    else:
        raise SystemExit(f"unknown point {point}")


def main() -> int:
    mode = sys.argv[1]
    if mode == "kill":
        point, articles, index = sys.argv[2:5]
        kill_at(point)
        settings = Settings.from_env(articles=articles, index=index, batch_size=2)
        refresh_index(settings, Embedder(settings.embedder, "onnx"))
        print("finished without being killed")
        return 3
    if mode == "unwritable":
        articles, index = Path(sys.argv[2]), Path(sys.argv[3])
        qa = QA(articles=articles, index=index)  # the index is up to date: loading it writes nothing
        out = {"articles_before": sorted(qa.articles), "files_before": sorted(p.name for p in articles.iterdir())}
        data = "Tram line opens\n\nThe new tram line in Port Ellis was opened by Mayor Ilse Varga on Monday.\n"
        out["add"] = []
        for _ in range(2):  # a retry must not leave a copy either
            try:
                qa.add_article("tram.txt", data.encode())
                out["add"].append("added")
            except QAError as err:
                out["add"].append(f"{type(err).__name__}: {err} | public: {err.public}")
        try:
            qa.remove_article("second.txt")
            out["remove"] = "removed"
        except QAError as err:
            out["remove"] = f"{type(err).__name__}: {err} | public: {err.public}"
        out["articles_after"] = sorted(qa.articles)
        out["files_after"] = sorted(p.name for p in articles.iterdir())
        out["on_disk"] = sorted(store.load_index(index).manifest["articles"])
        out["answer"] = qa.answer("Who designed the Port Ellis lighthouse?").article
        print(json.dumps(out))
        return 0
    if mode == "pg-kill":
        from qa.stores.postgres import PostgresStore

        n, articles, url = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        insert, calls = PostgresStore._insert, []

        def dying(*a):
            calls.append(1)
            insert(*a)
            if len(calls) == n:
                die()  # the article's rows are written, its transaction not committed

        PostgresStore._insert = staticmethod(dying)
        settings = Settings.from_env(articles=articles, store=url)
        refresh_index(settings, Embedder(settings.embedder))
        print("finished without being killed")
        return 3
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())

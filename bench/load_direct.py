"""Throughput of QA.answer itself under many threads, without the web layer: what bench/load_app.py
measures minus Gradio and its clients. Same shipped article and seed questions.

    python bench/load_direct.py [--clients 32] [--questions 20] [--json]

The difference between the two is the cost of serving (Gradio's queue, SSE, the gradio_client
clients that bench/load_app.py runs in the server's own process, on the same cores).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA  # noqa: E402
from qa.config import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--questions", type=int, default=20, help="per client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    questions = [i["question"] for i in json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())["answerable"]]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "articles").mkdir()
        shutil.copy2(ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt", Path(tmp) / "articles")
        qa = QA(settings=Settings.from_env(articles=Path(tmp) / "articles", index=Path(tmp) / "index"))
        alone = {q: qa.answer(q).text for q in questions}  # also loads the models

        t0 = time.perf_counter()
        for q in questions:
            qa.answer(q)
        serial = len(questions) / (time.perf_counter() - t0)

        differ: list[str] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            for j in range(args.questions):
                q = questions[(i * args.questions + j) % len(questions)]
                if qa.answer(q).text != alone[q]:
                    with lock:
                        differ.append(q)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    result = {"clients": args.clients, "questions": args.clients * args.questions, "wall_s": round(wall, 1),
              "questions_per_s": round(args.clients * args.questions / wall, 2),
              "serial_questions_per_s": round(serial, 2), "differs_from_alone": len(differ)}
    print(json.dumps(result) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

"""Load on the web chat: the app in-process, N concurrent gradio_client clients on loopback, each
asking M seed questions with known answers through the /ask endpoint. Every answer under load must be
the one the same question gets alone (concurrency must change nothing); answers that miss the gold
answer are model errors, counted apart (bench/seed_eval.py lists them).

    python bench/load_app.py [--clients 8] [--questions 10] [--json]

Prints p50/p95 latency per question as a client sees it (queueing included) and the throughput.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is local; never reach for the hub

import app as chat_app  # noqa: E402
from gradio_client import Client  # noqa: E402
from qa import QA  # noqa: E402
from qa.metrics import normalize  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=10, help="per client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    seeds = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())["answerable"]
    work = Path(tempfile.mkdtemp(prefix="load_app-"))
    shutil.copytree(ROOT / "seeds", work / "articles")
    qa = QA(articles=work / "articles", index=work / "index")
    alone = {item["question"]: qa.answer(item["question"]).text for item in seeds}  # also loads the models
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(qa)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)

    latencies: list[float] = []
    wrong: list[str] = []       # differs from the answer given alone: a concurrency defect
    off_gold: list[str] = []    # same as alone but not a gold answer: the model's error
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(args.clients)

    def user(i: int) -> None:
        try:
            client = Client(demo.local_url, verbose=False)
        except Exception as err:  # noqa: BLE001 - a benchmark reports every failure, it does not stop
            with lock:
                errors.append(f"client {i}: {err!r}")
            start.abort()
            return
        start.wait()
        for j in range(args.questions):
            item = seeds[(i * args.questions + j) % len(seeds)]  # the clients together cover every seed
            t0 = time.perf_counter()
            try:
                got = client.predict(item["question"], api_name="/ask")["text"]
            except Exception as err:  # noqa: BLE001
                with lock:
                    errors.append(f"{item['question']!r}: {err!r}")
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if got != alone[item["question"]]:
                    wrong.append(f"{item['question']!r} -> {got!r} under load, {alone[item['question']]!r} alone")
                elif got is None or normalize(got) not in {normalize(a) for a in item["answers"]}:
                    off_gold.append(f"{item['question']!r} -> {got!r}, gold {item['answers'][0]!r}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    demo.close()
    shutil.rmtree(work, ignore_errors=True)

    result = {
        "clients": args.clients, "questions": args.clients * args.questions, "answered": len(latencies),
        "differs_from_alone": len(wrong), "off_gold": len(off_gold), "errors": len(errors), "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 95), 3) if latencies else None,
        "questions_per_s": round(len(latencies) / wall, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for line, times in Counter(wrong + errors).items():  # the clients overlap: one line per distinct failure
            print(f"FAIL {line}" + (f" ({times}x)" if times > 1 else ""))
        print(f"{result['questions']} questions from {args.clients} concurrent clients in {wall:.1f} s "
              f"({result['questions_per_s']} questions/s): p50 {result['p50_s']} s, p95 {result['p95_s']} s; "
              f"{len(wrong)} differ from the answer alone, {len(errors)} errors; "
              f"{len(off_gold)} off the gold answer (model errors, same as alone)")
    return 0 if not wrong and not errors and len(latencies) == result["questions"] else 1


if __name__ == "__main__":
    sys.exit(main())

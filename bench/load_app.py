"""Load on the web chat: the app in-process, N concurrent gradio_client clients on loopback, each
asking M seed questions with known answers through the /ask endpoint. Every answer under load must be
the one the same question gets alone (concurrency must change nothing); answers that miss the gold
answer are model errors, counted apart (bench/seed_eval.py lists them).

    python bench/load_app.py [--clients 32] [--questions 20] [--json]
    python bench/load_app.py --clients 32 --questions 1 --add-during "1.9 MB"

Prints p50/p95 latency per question as a client sees it (queueing included) and the throughput.
--client http: each user is a plain HTTP client of Gradio's REST API for the same queued /ask event
(POST /gradio_api/call/ask, then its result stream), instead of gradio_client. The clients run on
the server's own 2 cores: gradio_client costs about as much CPU per question as the server does
(2026-11-25: 58 s of client CPU against 48 s of server CPU for 640 questions), so with it the
benchmark measures the clients as much as the chat.
--add-during SIZE: then an article of that size (SQuAD paragraphs from ../shared/data/qa) is added
through the chat's upload path while every client keeps asking until it is indexed; reports the
add's duration, the latencies during it against those before, the time answer() itself took
(waiting for the models included: the part an update can lengthen), and the process's memory
before the add, after it and after removing the article again.
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

from gradio_client import Client

from qa.web import page as chat_app
from qa import QA
from qa.config import Settings
from qa.training.metrics import normalize


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS), or the peak so far (VmHWM), of this process: server and clients."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class HttpAsker:
    """One user on Gradio's REST API: POST the question to the queued /ask event, read its result
    stream (Server-Sent Events) to the end. Same endpoint, queue and answers as gradio_client."""

    def __init__(self, url: str):
        import httpx

        self.url = url.rstrip("/") + "/gradio_api/call/ask"
        self.http = httpx.Client(timeout=120)

    def predict(self, question: str, api_name: str = "/ask") -> dict:
        event_id = self.http.post(self.url, json={"data": [question]}).raise_for_status().json()["event_id"]
        event = ""
        with self.http.stream("GET", f"{self.url}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = json.loads(line.split(":", 1)[1])
                    if event == "error":
                        raise RuntimeError(f"/ask failed: {data}")
                    return data[0]
        raise RuntimeError(f"/ask: the stream of event {event_id} ended without a result")


def big_article(size: int) -> str:
    """A long article of distinct real paragraphs (squadshifts new_wiki, else the SQuAD files)."""
    data = ROOT.parent / "shared" / "data" / "qa"
    parts, total = ["A long report built from many paragraphs\n"], 0
    for name in ("squadshifts-new_wiki_v1.0.json", "squad-v1.1-dev-part-train.json", "squad-v2.0-dev-half.json"):
        if not (data / name).exists():
            continue
        for article in json.loads((data / name).read_text())["data"]:
            for paragraph in article["paragraphs"]:
                parts.append(paragraph["context"].strip())
                total += len(parts[-1].encode()) + 2
                if total >= size:
                    return "\n\n".join(parts)
    raise SystemExit(f"not enough text in {data} for {size} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--questions", type=int, default=20, help="per client")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--client", choices=("gradio", "http"), default="gradio",
                        help="gradio_client (default), or a plain HTTP client of the REST API (lighter)")
    parser.add_argument("--add-during", metavar="SIZE", help='e.g. "1.9 MB": add an article that large meanwhile')
    args = parser.parse_args()

    seeds = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())["answerable"]
    work = Path(tempfile.mkdtemp(prefix="load_app-"))
    (work / "articles").mkdir()  # the shipped article only: the rest of seeds/ is the user's
    shutil.copy2(ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt", work / "articles")
    # as the chat does: index in a child process at a lower priority, unless QA_INDEX_WORKER says otherwise
    worker = {} if "QA_INDEX_WORKER" in os.environ else {"index_worker": "process"}
    qa = QA(articles=work / "articles", index=work / "index", settings=Settings.from_env(**worker))
    alone = {item["question"]: qa.answer(item["question"]).text for item in seeds}  # also loads the models
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(qa)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **chat_app.launch_options(qa))
    service: list[tuple[str, float]] = []   # (phase, seconds inside QA.answer)
    phase = ["before"]
    adding = threading.Event()
    real_answer = qa.answer

    def timed_answer(*a, **k):
        t = time.perf_counter()
        try:
            return real_answer(*a, **k)
        finally:
            service.append((phase[0], time.perf_counter() - t))
    qa.answer = timed_answer

    latencies: list[float] = []
    wrong: list[str] = []       # differs from the answer given alone: a concurrency defect
    changed: list[str] = []     # asked while the index changed (--add-during): may rightly differ
    off_gold: list[str] = []    # same as alone but not a gold answer: the model's error
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(args.clients)

    clients: dict[int, Client | HttpAsker] = {}  # one per user, kept for every phase (the same people go on asking)

    def user(i: int) -> None:
        try:
            if i not in clients:
                clients[i] = (HttpAsker(demo.local_url) if args.client == "http"
                              else Client(demo.local_url, verbose=False))
            client = clients[i]
        except Exception as err:  # noqa: BLE001 - a benchmark reports every failure, it does not stop
            with lock:
                errors.append(f"client {i}: {err!r}")
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            return
        j = 0
        while j < args.questions or adding.is_set():  # while an article is being added, keep asking
            item = seeds[(i * args.questions + j) % len(seeds)]  # the clients together cover every seed
            j += 1
            asked_in = phase[0]
            t0 = time.perf_counter()
            try:
                got = client.predict(item["question"], api_name="/ask")["text"]
            except Exception as err:  # noqa: BLE001
                try:
                    where = f" on {err.request.method} {err.request.url.path}"  # httpx errors name their request
                except (AttributeError, RuntimeError):
                    where = ""
                with lock:
                    errors.append(f"[{asked_in}] {item['question']!r}: {err!r}{where} after {time.perf_counter() - t0:.1f} s")
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                by_phase.setdefault(asked_in, []).append(elapsed)
                if got != alone[item["question"]] and asked_in != "before":
                    changed.append(item["question"])  # the index changed under it: BM25 statistics, new passages
                elif got != alone[item["question"]]:
                    wrong.append(f"{item['question']!r} -> {got!r} under load, {alone[item['question']]!r} alone")
                elif got is None or normalize(got) not in {normalize(a) for a in item["answers"]}:
                    off_gold.append(f"{item['question']!r} -> {got!r}, gold {item['answers'][0]!r}")

    by_phase: dict[str, list[float]] = {}
    added: dict = {}
    read_before = (qa.reader.queue.questions, qa.reader.queue.passes)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if args.add_during:
        from qa.config import parse_size

        upload = work / "long-report.txt"
        upload.write_text(big_article(parse_size(args.add_during)), encoding="utf-8")
        added["bytes"] = upload.stat().st_size
        added["rss_before_mb"] = round(rss_mb(), 1)
        phase[0] = "during"
        adding.set()
        start = threading.Barrier(args.clients)
        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        t_add = time.perf_counter()
        try:
            added["article"] = chat_app.add_upload(qa, upload)
        except Exception as err:  # noqa: BLE001
            errors.append(f"add: {err!r}")
        added["seconds"] = round(time.perf_counter() - t_add, 1)
        phase[0] = "after"
        adding.clear()
        for t in threads:
            t.join()
        added["passages"] = qa.articles.get(added.get("article"), {}).get("chunks")
        added["rss_after_add_mb"] = round(rss_mb(), 1)
        if "article" in added:
            qa.remove_article(added["article"])
        added["rss_after_remove_mb"] = round(rss_mb(), 1)
    wall = time.perf_counter() - t0
    demo.close()
    shutil.rmtree(work, ignore_errors=True)

    result = {
        "clients": args.clients, "client": args.client, "questions": args.clients * args.questions, "answered": len(latencies),
        "differs_from_alone": len(wrong), "off_gold": len(off_gold), "errors": len(errors), "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 95), 3) if latencies else None,
        "questions_per_s": round(len(latencies) / wall, 2),
        "peak_rss_mb": round(rss_mb("VmHWM"), 1),
        # questions that reached the reader, and the passes they took (fewer passes: shared ones)
        "reader_questions": qa.reader.queue.questions - read_before[0],
        "reader_passes": qa.reader.queue.passes - read_before[1],
    }
    if args.add_during:
        result["questions"] = len(latencies) + len(errors)
        for name, values in by_phase.items():
            result[f"{name}_p50_s"] = round(statistics.median(values), 3)
            result[f"{name}_max_s"] = round(max(values), 3)
        for name in ("before", "during"):
            inside = [s for p, s in service if p == name]
            if inside:
                result[f"answer_call_{name}_max_s"] = round(max(inside), 3)
                result[f"answer_call_{name}_p50_s"] = round(statistics.median(inside), 3)
        result["add"] = added
        result["differs_while_index_changed"] = len(changed)
    if args.json:
        print(json.dumps(result))
    else:
        for line, times in Counter(wrong + errors).items():  # the clients overlap: one line per distinct failure
            print(f"FAIL {line}" + (f" ({times}x)" if times > 1 else ""))
        print(f"{result['questions']} questions from {args.clients} concurrent clients in {wall:.1f} s "
              f"({result['questions_per_s']} questions/s): p50 {result['p50_s']} s, p95 {result['p95_s']} s; "
              f"{len(wrong)} differ from the answer alone, {len(errors)} errors; "
              f"{len(off_gold)} off the gold answer (model errors, same as alone); "
              f"{result['reader_questions']} questions read in {result['reader_passes']} reader passes; "
              f"peak RSS {result['peak_rss_mb']} MB (server and clients)")
        if args.add_during:
            print(json.dumps({k: v for k, v in result.items() if k.startswith(("before", "during", "after", "answer", "add"))}))
    return 0 if not wrong and not errors and len(latencies) == result["questions"] else 1


if __name__ == "__main__":
    sys.exit(main())

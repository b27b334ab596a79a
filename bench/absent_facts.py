"""Questions over a multi-article folder (tests/data/multi_article_questions.json): how many answerable
ones are answered from the right article, how many about facts no article states are abstained.

    python bench/absent_facts.py [--spec FILE] [--reader PATH] [--json]

The default folder: the seed article, tests/data/harbour-news.html and, when ../shared is beside the
project, three of its news pages (copied only into a temporary folder for this run). A spec with
"folder": "news-html" (tests/data/news_pages_questions.json) reads the five shared pages in place."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA, Settings  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "multi_article_questions.json"
SHARED_PAGES = ROOT.parent / "shared" / "data" / "news-html"
SEED = ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt"


def articles_folder(tmp: Path, spec: dict) -> tuple[Path, bool]:
    """The folder the spec's questions are asked over, and whether the shared pages are in it."""
    if spec.get("folder") == "news-html":  # read in place: nothing to ask over without them
        if not (SHARED_PAGES / "README.md").is_file():
            raise FileNotFoundError(f"the shared news pages are not here ({SHARED_PAGES})")
        return SHARED_PAGES, True
    return tmp / "articles", build_folder(tmp / "articles", spec)


def build_folder(folder: Path, spec: dict) -> bool:
    """Fill `folder`; True when the shared pages are in it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SEED, folder / SEED.name)
    shutil.copy2(ROOT / "tests" / "data" / "harbour-news.html", folder / "harbour-news.html")
    shared = all((SHARED_PAGES / p).is_file() for p in spec.get("shared_pages", []))
    if shared:
        for page in spec["shared_pages"]:
            shutil.copy2(SHARED_PAGES / page, folder / page)
    return shared


def run(qa: QA, spec: dict, shared: bool) -> dict:
    right, wrong, abstained_ok, answered_wrongly = [], [], [], []
    for item in spec["answerable"]:
        if item.get("shared") and not shared:
            continue
        a = qa.answer(item["q"])
        ok = a.text is not None and item["a"] in a.text and a.article == item["article"]
        (right if ok else wrong).append({"q": item["q"], "got": a.text, "article": a.article, "score": round(a.score, 3)})
    for item in spec["unanswerable"]:
        if item.get("shared") and not shared:
            continue
        a = qa.answer(item["q"])
        (abstained_ok if a.abstained else answered_wrongly).append(
            {"q": item["q"], "got": a.text, "article": a.article, "score": round(a.score, 3)})
    n_ans, n_un = len(right) + len(wrong), len(abstained_ok) + len(answered_wrongly)
    return {"shared_pages": shared, "answerable": n_ans, "answered_right": len(right),
            "unanswerable": n_un, "abstained": len(abstained_ok),
            "abstain_rate": round(len(abstained_ok) / n_un, 3) if n_un else None,
            "wrong": wrong, "answered_unanswerable": answered_wrongly}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=QUESTIONS)
    parser.add_argument("--reader", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    with tempfile.TemporaryDirectory(prefix="qa-absent-") as tmp:
        try:
            folder, shared = articles_folder(Path(tmp), spec)
        except FileNotFoundError as err:
            parser.error(str(err))
        qa = QA(settings=Settings.from_env(articles=folder, index=Path(tmp) / "index",
                                           reader=args.reader, watch=False))
        result = run(qa, spec, shared)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading SQuAD-format JSON (v1.1 and v2.0) into plain examples; also the Wikinews dev set's extra
fields (each question's `kind`, each report's `file`, ../shared/data/qa/wikinews-dev.README.md)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("fact", "list", "unanswerable")   # the Wikinews dev set's question kinds


@dataclass(frozen=True)
class Example:
    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]          # gold answer texts (several annotators); empty when unanswerable
    answer_starts: tuple[int, ...]    # character offsets of those answers in `context`
    # Wikinews dev set only ("" elsewhere): fact | list (answers = every item) | unanswerable
    kind: str = ""
    file: str = ""                    # the article's file name in the articles folder (wikinews-kmart.txt)
    report: int = 0                   # 1-based position of its article in the file

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def report_number(example: Example) -> int:
    """Which report a question belongs to: the NNN of its id `wn-NNN-QQ` (the dataset's own numbering,
    the one its usage rule is written in), else the article's position in the file."""
    match = re.match(r"wn-(\d+)-", example.id)
    return int(match.group(1)) if match else example.report


def read_squad(path: str | Path) -> list[Example]:
    """All questions of a SQuAD-format file, in file order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a readable SQuAD-format JSON file ({err})") from err
    examples = []
    for n, article in enumerate(data, 1):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                kind = qa.get("kind", "")
                if kind and kind not in KINDS:
                    raise ValueError(f"{path}: question {qa.get('id')}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
                gold = [] if qa.get("is_impossible") or kind == "unanswerable" else qa["answers"]
                examples.append(
                    Example(
                        id=str(qa["id"]),
                        title=article.get("title", ""),
                        context=paragraph["context"],
                        question=qa["question"],
                        answers=tuple(a["text"] for a in gold),
                        answer_starts=tuple(int(a["answer_start"]) for a in gold),
                        kind=kind,
                        file=article.get("file", ""),
                        report=n,
                    )
                )
    return examples


def has_kinds(examples: list[Example]) -> bool:
    """A file of the Wikinews dev set's shape: its questions say their kind."""
    return bool(examples) and all(e.kind for e in examples)

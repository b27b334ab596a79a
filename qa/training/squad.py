"""Reading SQuAD-format JSON (v1.1 and v2.0) into plain examples."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]          # gold answer texts (several annotators); empty when unanswerable
    answer_starts: tuple[int, ...]    # character offsets of those answers in `context`

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def read_squad(path: str | Path) -> list[Example]:
    """All questions of a SQuAD-format file, in file order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a readable SQuAD-format JSON file ({err})") from err
    examples = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                gold = [] if qa.get("is_impossible") else qa["answers"]
                examples.append(
                    Example(
                        id=str(qa["id"]),
                        title=article.get("title", ""),
                        context=paragraph["context"],
                        question=qa["question"],
                        answers=tuple(a["text"] for a in gold),
                        answer_starts=tuple(int(a["answer_start"]) for a in gold),
                    )
                )
    return examples

"""Question + context windows: the one place where text becomes model input.

Training and inference both call `make_windows`, so the truncation, stride and offset mapping
cannot drift apart between the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tokenizers import Tokenizer

if TYPE_CHECKING:  # torch is needed only by collate (training, the torch runtime)
    import torch

MAX_QUESTION_TOKENS = 64


@dataclass(frozen=True)
class Window:
    example: int                              # index of the (question, context) pair it was cut from
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int] | None, ...]  # character span in the context; None for question/special tokens

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def context_range(self) -> tuple[int, int]:
        """First and last token index that belong to the context."""
        positions = [i for i, o in enumerate(self.offsets) if o is not None]
        return positions[0], positions[-1]


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """A model folder's fast tokenizer, read from its tokenizer.json by the `tokenizers` library itself:
    transformers' AutoTokenizer would import torch (about 2 s), which the ONNX runtime never needs."""
    path = Path(folder) / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    # a folder with only vocab.txt: let transformers build it
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer


def backend(tokenizer) -> Tokenizer:
    """The `tokenizers` object behind a transformers tokenizer (training, the torch runtime), or the object."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def truncate_question(tokenizer, question: str) -> str:
    """Cut a very long question to its first MAX_QUESTION_TOKENS tokens so the context keeps its room."""
    if len(question) <= MAX_QUESTION_TOKENS:  # every token covers at least one character: nothing to cut
        return question
    tokens = backend(tokenizer)
    tokens.no_truncation()
    tokens.no_padding()
    offsets = tokens.encode(question, add_special_tokens=False).offsets
    if len(offsets) <= MAX_QUESTION_TOKENS:
        return question
    return question[: offsets[MAX_QUESTION_TOKENS - 1][1]]


def make_windows(
    tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int = 384,
    stride: int = 128,
) -> list[Window]:
    """Tokenise each (question, context) pair into overlapping windows of at most `max_length` tokens.

    `stride` is the number of context tokens two neighbouring windows share, so an answer that
    straddles one window's edge lies whole inside the next.
    """
    tokens = backend(tokenizer)
    questions = [truncate_question(tokens, q) for q in questions]
    # set on every call, as transformers does: the same tokenizer also cuts questions without truncation
    tokens.no_padding()
    tokens.enable_truncation(max_length, stride=stride, strategy="only_second")
    windows = []
    for example, encoding in enumerate(tokens.encode_batch(list(zip(questions, contexts)))):
        for part in (encoding, *encoding.overflowing):  # the first window, then the rest of a long context
            offsets = tuple(tuple(o) if s == 1 else None for o, s in zip(part.offsets, part.sequence_ids))
            windows.append(Window(example=example, input_ids=tuple(part.ids),
                                  token_type_ids=tuple(part.type_ids), offsets=offsets))
    return windows


def sentence_tokens(tokenizer, texts: Sequence[str], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token and type ids of each text alone, cut at `max_length` (the embedder's input)."""
    tokens = backend(tokenizer)
    tokens.no_padding()
    tokens.enable_truncation(max_length)
    return [(e.ids, e.type_ids) for e in tokens.encode_batch(list(texts))]


def answer_tokens(window: Window, start_char: int, end_char: int) -> tuple[int, int]:
    """Token positions of the answer inside the window, or (0, 0) (the CLS no-answer slot) when it
    does not lie whole inside this window."""
    first, last = window.context_range
    if window.offsets[first][0] > start_char or window.offsets[last][1] < end_char:
        return 0, 0
    start = first
    while start <= last and window.offsets[start][1] <= start_char:
        start += 1
    end = last
    while end >= first and window.offsets[end][0] >= end_char:
        end -= 1
    return start, end


def collate(windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch of windows to its longest member."""
    import torch

    width = max(len(w) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(windows), width), dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        ids[row, : len(w)] = torch.tensor(w.input_ids)
        types[row, : len(w)] = torch.tensor(w.token_type_ids)
        mask[row, : len(w)] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

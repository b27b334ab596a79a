"""Extractive question answering over a folder of news articles."""
from .config import Settings
from .errors import (
    ArticleRejected,
    ArticlesNotFound,
    DatabaseError,
    DistributedError,
    IndexBusy,
    IndexCorrupt,
    InvalidInput,
    InvalidQuestion,
    InvalidSetting,
    ModelLoadError,
    NoArticles,
    QAError,
    SchemaMismatch,
    StorageError,
)
from .pipeline import QA, Answer, answer

__all__ = ["QA", "Answer", "answer", "Settings", "QAError", "InvalidInput", "InvalidQuestion", "ArticlesNotFound",
           "NoArticles", "ModelLoadError", "IndexCorrupt", "ArticleRejected", "StorageError", "IndexBusy",
           "DatabaseError", "SchemaMismatch", "DistributedError", "InvalidSetting"]

"""The exceptions the package raises on purpose; all derive from QAError."""


class QAError(Exception):
    """Base class: anything the user can fix (bad input, missing files)."""


class InvalidQuestion(QAError, ValueError):
    """Empty, whitespace-only or over-long question."""


class ArticlesNotFound(QAError, FileNotFoundError):
    """The articles folder does not exist or is not a folder."""


class NoArticles(QAError):
    """The articles folder holds no readable article."""


class ModelLoadError(QAError):
    """A reader or embedder could not be loaded from the configured path or id."""


class IndexCorrupt(QAError):
    """The index on disk is unreadable or inconsistent; it should be rebuilt."""


class ArticleRejected(QAError, ValueError):
    """An article that cannot be added (or removed): wrong type, too large, not text, duplicate."""

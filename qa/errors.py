"""The exceptions the package raises on purpose; all derive from QAError.

`str(err)` is for the operator (it may name server paths); `err.public` is what a web user may see.
"""
import re

# /a/b/c.txt or ~/x (not the path part of a URL: no letter, ':' or '/' just before it) -> its last part
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~])(?:~/|/)(?:[\w.\-]+/)*([\w.\-]+)")


class QAError(Exception):
    """Base class: anything the user can fix (bad input, missing files)."""

    def __init__(self, message: str = "", public: str | None = None):
        super().__init__(message)
        self._public = public

    @property
    def public(self) -> str:
        """The message without server paths (the web chat shows this one): the one given, else this
        message with every absolute path cut down to its last part."""
        if self._public is not None:
            return self._public
        return _ABSOLUTE_PATH.sub(lambda m: m.group(1), str(self))


class InvalidInput(QAError, ValueError):
    """A request outside the bounds of qa/limits.py: a wrong type, too long, too many."""


class InvalidQuestion(InvalidInput):
    """Empty (or only invisible characters), over-long or not valid text."""


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


class StorageError(QAError, OSError):
    """The index or the articles folder could not be written (permissions, disk full): nothing was changed."""


class IndexBusy(QAError):
    """Another writer (process or thread) held the index for longer than the lock timeout."""


class DatabaseError(QAError):
    """The PostgreSQL store cannot be used: a bad URL, a server that is down, pgvector missing."""


class SchemaMismatch(DatabaseError):
    """The database holds an index schema of another version of this package."""


class InvalidSetting(QAError, ValueError):
    """A QA_* environment variable that is not a valid value of its setting (a word for a number, a number
    out of range): the message names the variable and what it accepts."""


class DistributedError(QAError):
    """Ray cannot be used for indexing: not installed, no cluster at the address, or a worker failed."""

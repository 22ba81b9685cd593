"""Errors Engram raises; each carries a message meant for the user."""


class EngramError(Exception):
    """Base class for every error Engram raises on purpose."""


class IngestError(EngramError):
    """Input that cannot be ingested (malformed file, invalid UTF-8, binary data...)."""

    def __init__(self, message: str, source: str = "", line: int | None = None):
        where = source + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


class StoreNotFoundError(EngramError):
    """A store location that holds no store, opened by a command that does not create one."""


class QueryError(EngramError):
    """A query with nothing to search for: empty, or only punctuation and spaces."""


class FilterError(EngramError):
    """A ``where`` filter that is not valid filter syntax."""


class EmbeddingMismatchError(EngramError):
    """Vectors from a model or dimension other than the store's."""


class NamespaceError(EngramError):
    """An unknown or invalid namespace."""


class GenerationError(EngramError):
    """A generator (local model or remote endpoint) failed: connection, timeout, bad reply."""

"""SQL over the store with recall as tables: ``similar('text', k, mode)`` and
``keywords('text', k)`` join with the views ``documents`` and ``chunks`` in one read-only
statement (``Memory.sql``, ``engram sql``, ``POST /v1/namespaces/{ns}/sql``). See docs/sql.md.
"""

from engram.sql.run import DEFAULT_LIMIT, DEFAULT_TIMEOUT, SqlResult, execute, prepare, run_sql
from engram.sql.tokens import SqlError

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT",
    "SqlError",
    "SqlResult",
    "execute",
    "prepare",
    "run_sql",
]

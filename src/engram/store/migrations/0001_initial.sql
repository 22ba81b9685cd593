-- Engram schema, version 1. Documented in docs/schema.md.
CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT NOT NULL REFERENCES namespaces(name),
    doc_key       TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL DEFAULT '',
    content_hash  TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (namespace, doc_key)
);
CREATE INDEX documents_source ON documents(source);
CREATE INDEX documents_created ON documents(created_at);

CREATE TABLE chunks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    text          TEXT NOT NULL,
    start_char    INTEGER NOT NULL DEFAULT 0,
    end_char      INTEGER NOT NULL DEFAULT 0,
    content_hash  TEXT NOT NULL
);
CREATE INDEX chunks_document ON chunks(document_id);
CREATE INDEX chunks_hash ON chunks(content_hash);

CREATE TABLE vectors (
    chunk_id  INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    dim       INTEGER NOT NULL,
    vector    BLOB NOT NULL
);

-- Every add and delete of a chunk, numbered; derived indexes catch up from here.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    op        TEXT NOT NULL CHECK (op IN ('add', 'delete')),
    chunk_id  INTEGER NOT NULL,
    at        REAL NOT NULL
);

-- What was forgotten or deleted, when and why.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    action     TEXT NOT NULL,
    namespace  TEXT NOT NULL DEFAULT '',
    target     TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

"""``engram sql``: SQL with ``similar()`` / ``keywords()`` over the store, on SQLite and
PostgreSQL (``ENGRAM_TEST_PG_URL``; see tests/pg.py), read-only and scoped to namespaces."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from pg import BACKENDS, CachingEmbedder, pg_url, store_location

from engram.cli import main
from engram.memory import Memory
from engram.samples import load_samples
from engram.sql import SqlError
from engram.sql.rewrite import parse
from engram.sql.tokens import tokenize

TRAVEL = "Larkspur Analytics Travel and Expense Policy"
CONTRACT = (
    "SELECT d.title, s.score FROM similar('nightly hotel cap London', 5) s "
    "JOIN documents d ON d.id = s.doc_id ORDER BY s.score DESC"
)
YEAR = {"sqlite": "json_extract(d.metadata, '$.year')", "postgres": "(d.metadata->>'year')::int"}


@pytest.fixture(scope="module")
def cached(embedder):
    return CachingEmbedder(embedder)


@pytest.fixture(scope="module")
def built(tmp_path_factory, cached):
    """``built(backend)``: ``(location, Memory)`` holding the sample corpus in ``default`` and
    two notes in ``other``; built once per module, read-only for the tests."""
    stack = ExitStack()
    stores: dict[str, tuple[str, Memory]] = {}

    def get(backend: str) -> tuple[str, Memory]:
        if backend not in stores:
            if backend == "postgres":
                pg_url()
            folder = tmp_path_factory.mktemp("sql")
            location = stack.enter_context(store_location(backend, folder, "sql"))
            mem = Memory(location, embedder=cached)
            mem.add(load_samples())
            mem.add(
                [
                    {"id": "o1", "text": "Secret: the hotel cap in London is 999 pounds."},
                    {"id": "o2", "text": "Other namespace note about composting leaves."},
                ],
                namespace="other",
            )
            stores[backend] = (location, mem)
        return stores[backend]

    yield get
    for _, mem in stores.values():
        mem.close()
    stack.close()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def mem(built, backend) -> Memory:
    return built(backend)[1]


def snapshot(mem: Memory) -> dict:
    stats = mem.store.stats()
    keep = ("schema_version", "namespaces", "documents", "chunks", "changes")
    return {k: stats[k] for k in keep}


# -- the contract -----------------------------------------------------------------------------
def test_cli_contract_travel_policy_first(built, backend, capsys):
    location, _ = built(backend)
    assert main(["--store", location, "sql", CONTRACT, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == ["title", "score"]
    assert out["rows"][0][0] == TRAVEL
    scores = [row[1] for row in out["rows"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert out["truncated"] is False


def test_cli_csv_and_explain(built, backend, capsys):
    location, _ = built(backend)
    query = "SELECT id, title FROM documents WHERE title LIKE 'Larkspur%' ORDER BY id"
    assert main(["--store", location, "sql", query, "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id,title" and lines[1].endswith("travel-expense-policy.md," + TRAVEL)
    assert main(["--store", location, "sql", CONTRACT, "--explain"]) == 0
    text = capsys.readouterr().out
    assert "FROM similar_1 s JOIN documents d" in text and "similar('" not in text
    assert "travel-expense-policy.md" in text  # the recalled rows are in the statement
    assert main(["--store", location, "sql", "DROP TABLE documents"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only" in err and "position 1" in err


# -- SQL with recall --------------------------------------------------------------------------
def test_similar_rows_and_modes(mem):
    cols = "SELECT s.chunk_id, s.doc_id, s.score, s.rank, s.namespace FROM "
    rows = mem.sql(cols + "similar('nightly hotel cap London', 3) s ORDER BY s.rank").rows
    hits = mem.search("nightly hotel cap London", k=3)
    expected = [(h.id, h.doc_id, i + 1) for i, h in enumerate(hits)]
    assert [(r[0], r[1], r[3]) for r in rows] == expected
    assert all(r[4] == "default" for r in rows)
    kw = mem.sql(cols + "keywords('hotel cap', 4) s").rows
    assert [r[0] for r in kw] == [h.id for h in mem.search("hotel cap", k=4, mode="keyword")]
    vec = mem.sql(cols + "similar('hotel cap', 2, 'vector') AS s").rows
    assert [r[0] for r in vec] == [h.id for h in mem.search("hotel cap", k=2, mode="vector")]
    # Two table functions in one statement, and text that only looks like a call.
    both = mem.sql(
        "SELECT count(*), 'similar(''x'') -- ; not a call' FROM similar('soup', 3) a "
        "JOIN keywords('lentil soup', 3) b ON a.chunk_id = b.chunk_id /* similar( */"
    ).rows
    assert both[0][0] >= 1 and both[0][1] == "similar('x') -- ; not a call"


def test_worked_examples_from_the_docs(mem, backend):
    """The examples of docs/sql.md, in each dialect."""
    year = YEAR[backend]
    per_year = mem.sql(
        f"SELECT {year} AS year, count(DISTINCT d.id) AS documents "
        "FROM similar('money rules for staff travel and hotels', 20) s "
        "JOIN documents d ON d.id = s.doc_id GROUP BY 1 ORDER BY 1"
    )
    assert per_year.columns == ["year", "documents"]
    years = {int(y): n for y, n in per_year.rows}
    assert years[2024] >= 1 and sum(years.values()) <= len(load_samples())
    best = mem.sql(
        "SELECT source, title, score, year FROM (SELECT d.source, d.title, s.score, "
        f"{year} AS year, row_number() OVER (PARTITION BY d.source ORDER BY s.score DESC) AS r "
        "FROM similar('how often to water a monstera', 30) s JOIN documents d ON d.id = s.doc_id"
        ") AS ranked WHERE r <= 2 ORDER BY score DESC"
    )
    assert "Monstera" in best.rows[0][1]
    sources = [r[0] for r in best.rows]
    assert max(sources.count(s) for s in sources) <= 2 < len(best.rows)  # two per source
    chunks = mem.sql(
        "SELECT c.doc_id, c.position, c.text FROM keywords('cap', 3) k "
        "JOIN chunks c ON c.id = k.chunk_id ORDER BY k.rank"
    )
    assert "cap" in chunks.rows[0][2].lower()


def test_metadata_as_json(mem, backend):
    each = {
        "sqlite": "SELECT j.key, count(*) FROM documents d, json_each(d.metadata) j GROUP BY 1",
        "postgres": "SELECT j.key, count(*) FROM documents d, jsonb_each(d.metadata) j GROUP BY 1",
    }[backend]
    docs = load_samples()
    keys = sorted({k for d in docs for k in d.metadata})
    expected = [(k, sum(k in d.metadata for d in docs)) for k in keys]
    assert sorted(mem.sql(each).rows) == expected and ("topic", len(docs)) in expected
    year = YEAR[backend]
    rows = mem.sql(f"SELECT d.title FROM documents d WHERE {year} = 2020").rows
    assert rows == [("The Water Cycle in Brief",)]


def test_views_are_scoped_to_namespaces(mem):
    q = "SELECT namespace, count(*) FROM documents GROUP BY namespace ORDER BY namespace"
    n_samples = len(load_samples())
    assert mem.sql(q).rows == [("default", n_samples)]
    assert mem.sql(q, namespace="other").rows == [("other", 2)]
    assert mem.sql(q, namespace="*").rows == [("default", n_samples), ("other", 2)]
    for scope, n in (("*", n_samples + 2), ([], 0), ("other", 2)):  # a bare count(*) too
        assert mem.sql("SELECT count(*) FROM documents", namespace=scope).rows == [(n,)]
        assert mem.sql("SELECT count(*) FROM chunks", namespace=scope).rows[0][0] >= n
    hidden = "SELECT s.doc_id FROM similar('hotel cap London 999', 20) s"
    assert "o1" not in [r[0] for r in mem.sql(hidden).rows]
    assert "o1" in [r[0] for r in mem.sql(hidden, namespace="*").rows]
    assert mem.sql("SELECT count(*) FROM chunks WHERE namespace = 'other'").rows[0][0] == 0


def test_parameters(mem, backend):
    q = (
        "SELECT s.doc_id FROM similar(:q, 2) s JOIN documents d ON d.id = s.doc_id "
        "WHERE d.title LIKE :t"
    )
    if backend == "postgres":
        q = q.replace(":q", "%(q)s").replace(":t", "%(t)s")
    rows = mem.sql(q, {"q": "nightly hotel cap London", "t": "Larkspur%"}).rows
    assert rows and all(r[0].endswith("travel-expense-policy.md") for r in rows)
    with pytest.raises(SqlError, match="needs a named value"):
        mem.sql(q, {"t": "x"})


# -- safety -----------------------------------------------------------------------------------
WRITES = {
    "insert": ("INSERT INTO documents(id) VALUES ('x')", "read-only: INSERT"),
    "delete": ("DELETE FROM chunks", "read-only: DELETE"),
    "update": ("UPDATE documents SET title = 'x'", "read-only: UPDATE"),
    "drop": ("DROP TABLE documents", "read-only: DROP"),
    "attach": ("ATTACH DATABASE 'other.db' AS o", "read-only: ATTACH"),
    "pragma": ("PRAGMA user_version = 99", "read-only: PRAGMA"),
    "multi": ("SELECT 1; DELETE FROM chunks", "only one statement"),
    "multi-comment": ("SELECT 1 /* ; */; DROP TABLE chunks --", "only one statement"),
}
WITH_WRITE = {
    "sqlite": "WITH x AS (SELECT 1) DELETE FROM main.chunks",
    "postgres": "WITH x AS (DELETE FROM chunks RETURNING id) SELECT count(*) FROM x",
}


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_writes_are_refused_and_change_nothing(mem, kind):
    statement, message = WRITES[kind]
    before = snapshot(mem)
    with pytest.raises(SqlError, match=message) as err:
        mem.sql(statement)
    assert "\n" not in str(err.value) and "position" in str(err.value)
    assert snapshot(mem) == before
    assert mem.search("nightly hotel cap London", k=1)[0].title == TRAVEL


def test_a_write_inside_with_is_refused(mem, backend):
    before = snapshot(mem)
    with pytest.raises(SqlError, match="read-only"):
        mem.sql(WITH_WRITE[backend])
    assert snapshot(mem) == before


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM main.chunks",
        "INSERT INTO main.settings(key, value) VALUES ('a', 'b')",
        "DROP TABLE main.chunks",
        "ATTACH DATABASE ':memory:' AS o",
        "PRAGMA user_version = 99",
        "PRAGMA main.journal_mode = DELETE",
    ],
)
def test_sqlite_connection_refuses_writes_by_itself(built, statement):
    """The second wall on SQLite: the read-only connection's authorizer, without the
    statement check in front of it."""
    from engram.sql.sqlite_run import run_sqlite

    location, mem = built("sqlite")
    before = snapshot(mem)
    with pytest.raises(SqlError, match="read-only"):
        run_sqlite(location, statement, None, ["default"], limit=10, timeout=5)
    assert snapshot(mem) == before


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM chunks",
        "INSERT INTO settings(key, value) VALUES ('a', 'b')",
        "DROP TABLE chunks",
    ],
)
def test_postgres_transaction_refuses_writes_by_itself(built, statement):
    """The second wall on PostgreSQL: the read-only transaction, without the checks."""
    import psycopg

    from engram.sql import pg_run

    _, mem = built("postgres")
    before = snapshot(mem)
    with mem.store.pool.connection() as conn:
        pg_run.begin_read_only(conn, 5)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(statement)
        conn.rollback()
    assert snapshot(mem) == before


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM api_keys",
        "SELECT hash FROM api_keys",
        "SELECT * FROM vectors",
        "SELECT * FROM audit",
        "SELECT name FROM namespaces",
        "WITH api_keys AS (SELECT * FROM api_keys) SELECT * FROM api_keys",
    ],
)
def test_store_tables_are_invisible(mem, statement):
    # SQLite refuses the last one as a circular reference before reading anything.
    with pytest.raises(SqlError, match="not visible|circular reference"):
        mem.sql(statement, namespace="*")


def test_bypasses_of_the_views_are_refused(mem, backend):
    qualified = "main.documents" if backend == "sqlite" else "public.documents"
    with pytest.raises(SqlError, match="not visible"):
        mem.sql(f"SELECT count(*) FROM {qualified}")
    shadow = f"WITH documents AS (SELECT * FROM {qualified}) SELECT * FROM documents"
    with pytest.raises(SqlError, match="not visible"):
        mem.sql(shadow)
    if backend == "postgres":
        for fn in (
            "query_to_xml('SELECT * FROM documents', true, true, '')",
            "pg_read_file('/etc/passwd')",
            "set_config('search_path', 'public', true)",
        ):
            with pytest.raises(SqlError, match="not available"):
                mem.sql(f"SELECT {fn}")
    else:
        with pytest.raises(SqlError, match="not visible"):
            mem.sql("SELECT name FROM sqlite_master")


def test_row_and_time_limits(mem, backend):
    series = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 50) "
        "SELECT i FROM r"
    )
    result = mem.sql(series, limit=7)
    assert [r[0] for r in result.rows] == list(range(1, 8)) and result.truncated
    assert not mem.sql(series, limit=50).truncated
    endless = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    )
    with pytest.raises(SqlError, match=r"time limit \(0.5 s\)"):
        mem.sql(endless, timeout=0.5)


@pytest.mark.parametrize(
    ("statement", "message", "position"),
    [
        ("SELECT title FORM documents", "syntax error", 19),
        ("SELECT 'é', title FORM documents", "syntax error", 24),
        ("SELECT 1\x00", "NUL character", 9),
        ("SELECT 1 FROM similar(42)", "first argument is the query text", 15),
        ("SELECT 1 FROM similar('x', 0)", "k must be an integer", 15),
        ("SELECT 1 FROM similar('x', 5, 'fuzzy')", "mode must be", 15),
        ("SELECT similar('x')", "is a table: use it in FROM or JOIN", 8),
        ("SELECT 'unterminated FROM documents", "unterminated", 8),
        ("", "empty statement", None),
    ],
)
def test_errors_are_one_line_with_a_position(mem, statement, message, position):
    with pytest.raises(SqlError, match=message) as err:
        mem.sql(statement)
    assert "\n" not in str(err.value)
    assert err.value.position == position


def test_unknown_column_error_points_at_it(mem):
    with pytest.raises(SqlError, match="nosuch") as err:
        mem.sql("SELECT d.title, nosuch FROM documents d")
    assert err.value.position == 17


# -- the tokenizer ----------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_tokenizer_keeps_literals_and_comments_whole(dialect):
    sql = "SELECT 'a;b' AS \"x;\" -- c;\n/* d; */ FROM t"
    kinds = [(t.kind, t.text) for t in tokenize(sql, dialect) if t.kind != "space"]
    assert ("string", "'a;b'") in kinds and ("qident", '"x;"') in kinds
    assert ("comment", "-- c;") in kinds and ("comment", "/* d; */") in kinds
    assert "".join(t.text for t in tokenize(sql, dialect)) == sql


def test_postgres_dollar_quotes_and_nested_comments():
    stmt = parse("SELECT $q$ similar('x') ; $q$ /* a /* b */ ; */ FROM similar('y') s", "postgres")
    assert [c.text for c in stmt.calls] == ["y"]
    assert stmt.body().endswith("FROM similar_1 s")


def test_user_with_clause_is_merged():
    stmt = parse("WITH RECURSIVE t(n) AS (SELECT 1) SELECT * FROM t, similar('x', 2) s", "sqlite")
    text, pieces = stmt.render(["similar_1(a) AS (SELECT 1)"])
    assert text.startswith("WITH RECURSIVE\n  similar_1(a) AS (SELECT 1),\n  t(n) AS")
    # Positions in the rewritten text map back to the user's statement.
    assert stmt.position(pieces, text.index("t(n)")) == len("WITH RECURSIVE ") + 1
    assert stmt.position(pieces, text.index("similar_1 s")) == stmt.original.index("similar(") + 1


def test_bench_sql_overhead_runs(built, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from bench.sql_overhead import main as bench_main

    location, _ = built("sqlite")  # holds the samples already: nothing is embedded again
    out = bench_main(["--store", location, "--runs", "1"])
    assert set(out) == {"search_ms", "sql_similar_ms", "sql_plain_ms"}
    assert all(v > 0 for v in out.values())
